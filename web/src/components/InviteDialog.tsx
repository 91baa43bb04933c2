"use client";

import { useState, type FormEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { inviteUser } from "@/lib/actions";
import { Dialog } from "./Dialog";

/** Invite someone to the open channel by their user ID. */
export function InviteDialog({ client, roomId, roomLabel, onClose }: {
  client: MatrixClient; roomId: string; roomLabel: string; onClose: () => void;
}) {
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const invited = await inviteUser(client, roomId, userId);
      setDone(`Invited ${invited}.`);
      setUserId("");
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={`Invite people to ${roomLabel}`} onClose={onClose}>
      <form onSubmit={submit} className="space-y-3">
        <label className="block text-sm font-medium">User ID
          <input className="mt-1 w-full rounded-md border border-slate-300 px-3 py-2 font-normal focus:border-indigo-500 focus:outline-none"
            name="invite-user-id" value={userId} onChange={(e) => setUserId(e.target.value)} placeholder="@alice:example.org" />
        </label>
        {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
        {done && <p role="status" className="text-sm text-green-700">{done}</p>}
        <div className="flex justify-end gap-2">
          <button type="button" onClick={onClose} className="rounded px-3 py-2 text-sm">Done</button>
          <button type="submit" disabled={busy || !userId.trim()} className="rounded bg-indigo-600 px-3 py-2 text-sm font-semibold text-white disabled:opacity-60">Invite</button>
        </div>
      </form>
    </Dialog>
  );
}
