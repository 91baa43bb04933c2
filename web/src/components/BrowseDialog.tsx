"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { joinRoom, publicRooms } from "@/lib/actions";
import { openRoom } from "@/lib/navigation";
import { useRooms } from "@/lib/rooms";
import { Dialog } from "./Dialog";

export function BrowseDialog({ client, onClose }: { client: MatrixClient; onClose: () => void }) {
  const [term, setTerm] = useState("");
  const [error, setError] = useState<string | null>(null);
  const joined = useRooms((s) => s.rooms);
  const q = useQuery({ queryKey: ["publicRooms", client.userId, term], queryFn: () => publicRooms(client, term) });

  async function join(roomId: string) {
    setError(null);
    try {
      await joinRoom(client, roomId);
      onClose();
      openRoom(roomId);
    } catch (e) {
      setError(describeError(e));
    }
  }

  return (
    <Dialog title="Browse channels" onClose={onClose}>
      <input aria-label="Search channels" value={term} onChange={(e) => setTerm(e.target.value)} placeholder="Search channels"
        className="mb-3 w-full rounded-md border border-slate-300 px-3 py-2 focus:border-indigo-500 focus:outline-none" />
      {q.isPending && <p className="text-sm text-slate-500">Loading…</p>}
      {q.error && <p role="alert" className="text-sm text-red-700">{describeError(q.error)}</p>}
      {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
      <ul className="max-h-80 space-y-1 overflow-y-auto" data-testid="public-rooms">
        {q.data?.map((r) => {
          const isMember = joined[r.room_id]?.membership === "join";
          return (
            <li key={r.room_id} className="flex items-center gap-2 rounded border border-slate-200 p-2" data-testid="public-room">
              <div className="min-w-0 flex-1">
                <div className="truncate font-medium"># {r.name ?? r.canonical_alias ?? r.room_id}</div>
                {r.topic && <div className="truncate text-xs text-slate-500">{r.topic}</div>}
                <div className="text-xs text-slate-500">{r.num_joined_members} {r.num_joined_members === 1 ? "member" : "members"}</div>
              </div>
              {isMember ? (
                <button type="button" className="rounded px-2 py-1 text-sm" onClick={() => { onClose(); openRoom(r.room_id); }}>Open</button>
              ) : (
                <button type="button" className="rounded bg-indigo-600 px-2 py-1 text-sm font-semibold text-white" onClick={() => void join(r.room_id)}>Join</button>
              )}
            </li>
          );
        })}
        {q.data && q.data.length === 0 && <li className="text-sm text-slate-500">No public channels{term ? " match" : " yet"}.</li>}
      </ul>
    </Dialog>
  );
}
