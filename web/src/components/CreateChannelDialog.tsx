"use client";

import { useState, type FormEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { addToOrganization, createChannel } from "@/lib/actions";
import { roomName, useRooms } from "@/lib/rooms";
import { useUi } from "@/lib/ui";
import { openRoom } from "@/lib/navigation";
import { Dialog } from "./Dialog";

export function CreateChannelDialog({ client, onClose }: { client: MatrixClient; onClose: () => void }) {
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const [isPublic, setPublic] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const org = useUi((s) => s.org);
  const orgName = useRooms((s) => (org && s.rooms[org] ? roomName(s.rooms[org], client.userId) : null));

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!name.trim()) {
      setError("Give the channel a name.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const roomId = await createChannel(client, { name: name.trim(), topic, isPublic });
      if (org) await addToOrganization(client, org, roomId);
      onClose();
      openRoom(roomId);
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  }

  const input = "mt-1 w-full rounded-md border border-slate-300 px-3 py-2 font-normal focus:border-indigo-500 focus:outline-none";
  return (
    <Dialog title="Create a channel" onClose={onClose}>
      <form onSubmit={submit} className="space-y-3">
        <label className="block text-sm font-medium">Name
          <input className={input} name="channel-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. plan-budget" />
        </label>
        <label className="block text-sm font-medium">Topic <span className="font-normal text-slate-500">(optional)</span>
          <input className={input} name="channel-topic" value={topic} onChange={(e) => setTopic(e.target.value)} />
        </label>
        {orgName && <p className="text-sm text-slate-600 dark:text-slate-300" data-testid="in-org">In the organization {orgName}</p>}
        <fieldset className="text-sm">
          <legend className="font-medium">Who can join</legend>
          <label className="mt-1 flex items-center gap-2"><input type="radio" name="visibility" checked={isPublic} onChange={() => setPublic(true)} /> Public: anyone can find and join it</label>
          <label className="flex items-center gap-2"><input type="radio" name="visibility" checked={!isPublic} onChange={() => setPublic(false)} /> Private: by invitation only</label>
        </fieldset>
        {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
        <div className="flex justify-end gap-2">
          <button type="button" onClick={onClose} className="rounded px-3 py-2 text-sm">Cancel</button>
          <button type="submit" disabled={busy} className="rounded bg-indigo-600 px-3 py-2 text-sm font-semibold text-white disabled:opacity-60">Create</button>
        </div>
      </form>
    </Dialog>
  );
}
