"use client";

import { useState, type FormEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { ENCRYPT_DIRECT_MESSAGES, startDirect } from "@/lib/actions";
import { openRoom } from "@/lib/navigation";
import { Dialog } from "./Dialog";

export function DirectDialog({ client, onClose }: { client: MatrixClient; onClose: () => void }) {
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const roomId = await startDirect(client, userId);
      onClose();
      openRoom(roomId);
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  }

  return (
    <Dialog title="Start a direct message" onClose={onClose}>
      <form onSubmit={submit} className="space-y-3">
        <label className="block text-sm font-medium">User ID
          <input className="mt-1 w-full rounded-md border border-slate-300 px-3 py-2 font-normal focus:border-indigo-500 focus:outline-none"
            name="user-id" value={userId} onChange={(e) => setUserId(e.target.value)} placeholder="@alice:example.org" />
        </label>
        {ENCRYPT_DIRECT_MESSAGES && (
          <p className="text-sm text-slate-600 dark:text-slate-300" data-testid="dm-encrypted-note">
            🔒 Direct messages are end-to-end encrypted: only your devices and theirs can read them.
          </p>
        )}
        {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
        <div className="flex justify-end gap-2">
          <button type="button" onClick={onClose} className="rounded px-3 py-2 text-sm">Cancel</button>
          <button type="submit" disabled={busy} className="rounded bg-indigo-600 px-3 py-2 text-sm font-semibold text-white disabled:opacity-60">Start</button>
        </div>
      </form>
    </Dialog>
  );
}
