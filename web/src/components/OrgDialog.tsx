"use client";

import { useState, type FormEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { createOrganization } from "@/lib/actions";
import { useUi } from "@/lib/ui";
import { Dialog } from "./Dialog";

export function OrgDialog({ client, onClose }: { client: MatrixClient; onClose: () => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!name.trim()) {
      setError("Give the organization a name.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const id = await createOrganization(client, name.trim());
      useUi.getState().setOrg(id);
      onClose();
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  }

  return (
    <Dialog title="Create an organization" onClose={onClose}>
      <form onSubmit={submit} className="space-y-3">
        <label className="block text-sm font-medium">Organization name
          <input className="mt-1 w-full rounded-md border border-slate-300 bg-transparent px-3 py-2 font-normal focus:border-indigo-500 focus:outline-none"
            name="org-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Acme" />
        </label>
        <p className="text-xs text-slate-500">Channels you create while it is selected go into it.</p>
        {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
        <div className="flex justify-end gap-2">
          <button type="button" onClick={onClose} className="rounded px-3 py-2 text-sm">Cancel</button>
          <button type="submit" disabled={busy} className="rounded bg-indigo-600 px-3 py-2 text-sm font-semibold text-white disabled:opacity-60">Create</button>
        </div>
      </form>
    </Dialog>
  );
}
