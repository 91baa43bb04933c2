"use client";

import { useEffect, useRef, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { leaveRoom, sendReadReceipt } from "@/lib/actions";
import { roomName, useRooms } from "@/lib/rooms";
import type { RoomData } from "@/lib/types";
import { Composer } from "./Composer";
import { MessageList } from "./MessageList";

export function RoomView({ client, room }: { client: MatrixClient; room: RoomData }) {
  const direct = useRooms((s) => s.direct[room.roomId]);
  const name = roomName(room, client.userId, direct);
  const lastRead = useRef<string | null>(null);
  const last = [...room.timeline].reverse().find((e) => !e.pending && !e.event_id.startsWith("~"));

  // Reading the channel is reading its newest event: tell the server so badges clear everywhere.
  useEffect(() => {
    if (!last || lastRead.current === last.event_id) return;
    lastRead.current = last.event_id;
    useRooms.getState().markRead(room.roomId);
    if (last.sender !== client.userId) {
      sendReadReceipt(client, room.roomId, last.event_id).catch(() => { lastRead.current = null; });
    }
  }, [client, room.roomId, last]);

  const [error, setError] = useState<string | null>(null);
  const members = Object.values(room.members).filter((m) => m.membership === "join").length;

  async function leave() {
    setError(null);
    try {
      await leaveRoom(client, room.roomId);
      window.location.hash = "";
    } catch (e) {
      setError(describeError(e));
    }
  }

  return (
    <section className="flex min-h-0 flex-1 flex-col" aria-label={`Channel ${name}`}>
      <header className="flex items-baseline gap-3 border-b border-slate-200 px-4 py-3">
        <button type="button" onClick={() => { window.location.hash = ""; }} aria-label="Back to channels"
          className="shrink-0 rounded px-1 text-slate-600 hover:bg-slate-100 md:hidden">←</button>
        <h1 className="truncate text-lg font-bold" data-testid="room-name">{direct ? "" : "# "}{name}</h1>
        {room.topic && <p className="truncate text-sm text-slate-500" data-testid="room-topic">{room.topic}</p>}
        <span className="ml-auto shrink-0 text-xs text-slate-500">{members} {members === 1 ? "member" : "members"}</span>
        <button type="button" onClick={() => void leave()} className="shrink-0 rounded px-2 py-1 text-xs text-slate-600 hover:bg-slate-100">
          Leave
        </button>
      </header>
      {error && <p role="alert" className="px-4 py-1 text-sm text-red-700">{error}</p>}
      <MessageList client={client} room={room} />
      <Composer client={client} roomId={room.roomId} placeholder={`Message ${direct ? "" : "#"}${name}`} />
    </section>
  );
}
