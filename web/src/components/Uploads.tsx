"use client";

import { useCallback, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { sendFile, type Upload } from "@/lib/media";

let nextId = 0;

/** Files being sent to a room, each with its progress (or its error). */
export function useUploads(client: MatrixClient, roomId: string) {
  const [uploads, setUploads] = useState<Upload[]>([]);
  const add = useCallback((files: Iterable<File>) => {
    for (const file of files) {
      nextId += 1;
      const id = `u${nextId}`;
      const update = (patch: Partial<Upload>) => setUploads((all) => all.map((u) => (u.id === id ? { ...u, ...patch } : u)));
      setUploads((all) => [...all, { id, name: file.name, progress: 0 }]);
      sendFile(client, roomId, file, (progress) => update({ progress })).then(
        () => setUploads((all) => all.filter((u) => u.id !== id)),
        (e) => update({ error: describeError(e) }),
      );
    }
  }, [client, roomId]);
  const dismiss = useCallback((id: string) => setUploads((all) => all.filter((u) => u.id !== id)), []);
  return { uploads, add, dismiss };
}

export function UploadList({ uploads, dismiss }: { uploads: Upload[]; dismiss: (id: string) => void }) {
  if (uploads.length === 0) return null;
  return (
    <ul className="space-y-1 px-4 pt-2 text-sm" aria-label="Uploads">
      {uploads.map((u) => (
        <li key={u.id} data-testid="upload" className="flex items-center gap-2">
          <span className="min-w-0 flex-1 truncate">{u.name}</span>
          {u.error ? (
            <>
              <span role="alert" className="text-xs text-red-600">{u.error}</span>
              <button type="button" className="text-xs underline" onClick={() => dismiss(u.id)}>Dismiss</button>
            </>
          ) : (
            <progress className="h-2 w-32" max={1} value={u.progress} aria-label={`Uploading ${u.name}`} data-testid="upload-progress" />
          )}
        </li>
      ))}
    </ul>
  );
}
