"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { getAiSettings } from "@/lib/ai";
import { describeError, type MatrixClient } from "@/lib/api";
import { leaveRoom, sendReadReceipt } from "@/lib/actions";
import { typingLine } from "@/lib/messageActions";
import { isMainTimelineEvent } from "@/lib/relations";
import { memberName, roomName, useRooms } from "@/lib/rooms";
import { useUi } from "@/lib/ui";
import type { RoomData } from "@/lib/types";
import { AiDrawer } from "./AiDrawer";
import { Composer } from "./Composer";
import { InviteDialog } from "./InviteDialog";
import { JumpToMessage } from "./JumpToMessage";
import { MembersButton } from "./MembersButton";
import { MessageList } from "./MessageList";
import { ReplySuggestions } from "./ReplySuggestions";
import { ThreadPanel } from "./ThreadPanel";
import { UploadList, useUploads } from "./Uploads";

/** The lock on an end-to-end encrypted room. */
export function EncryptedMark() {
  return (
    <span role="img" aria-label="End-to-end encrypted" title="End-to-end encrypted: only the members' devices can read it"
      data-testid="encrypted-room" className="shrink-0 self-center text-emerald-700 dark:text-emerald-400">
      <svg aria-hidden="true" viewBox="0 0 16 16" width="14" height="14" fill="currentColor">
        <path d="M5 7V5a3 3 0 0 1 6 0v2h.5A1.5 1.5 0 0 1 13 8.5v5a1.5 1.5 0 0 1-1.5 1.5h-7A1.5 1.5 0 0 1 3 13.5v-5A1.5 1.5 0 0 1 4.5 7H5Zm1.5 0h3V5a1.5 1.5 0 0 0-3 0v2Z" />
      </svg>
    </span>
  );
}

export function RoomView({ client, room }: { client: MatrixClient; room: RoomData }) {
  const direct = useRooms((s) => s.direct[room.roomId]);
  const name = roomName(room, client.userId, direct);
  const lastRead = useRef<string | null>(null);
  const last = [...room.timeline].reverse().find((e) => !e.pending && !e.event_id.startsWith("~") && isMainTimelineEvent(e));
  const thread = useUi((s) => s.thread);
  const aiOpen = useUi((s) => s.ai);
  const ai = useQuery({ queryKey: ["ai-server", client.userId, "settings"], queryFn: () => getAiSettings(client), retry: false });
  const aiAvailable = ai.data?.available === true;
  const [searchTerm, setSearchTerm] = useState("");
  const typing = typingLine(room.typing.map((u) => memberName(room, u)));

  // A thread or an edit in progress belongs to the channel it was opened in.
  useEffect(() => () => {
    useUi.getState().openThread(null);
    useUi.getState().setEditing(null);
    useUi.getState().setAi(false);
  }, [room.roomId]);

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
  const [inviting, setInviting] = useState(false);
  const { uploads, add: addFiles, dismiss } = useUploads(client, room.roomId);
  const [dragging, setDragging] = useState(false);

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
        {room.encrypted && <EncryptedMark />}
        {room.topic && <p className="truncate text-sm text-slate-500" data-testid="room-topic">{room.topic}</p>}
        <MembersButton room={room} />
        <form role="search" data-testid="search-form" className="ml-auto shrink-0 sm:ml-0" onSubmit={(e) => {
          e.preventDefault();
          if (searchTerm.trim()) useUi.getState().setSearch({ term: searchTerm.trim(), roomId: room.roomId });
        }}>
          <input type="search" aria-label="Search messages" data-testid="search-box" value={searchTerm}
            onChange={(e) => setSearchTerm(e.target.value)} placeholder={`Search ${direct ? "" : "#"}${name}`}
            className="w-24 rounded-md border border-slate-300 bg-transparent px-2 py-1 text-xs sm:w-40 sm:focus:w-56 focus:border-indigo-500 focus:outline-none dark:border-slate-600" />
        </form>
        {aiAvailable && (
          <button type="button" aria-pressed={aiOpen} onClick={() => { useUi.getState().openThread(null); useUi.getState().setAi(!aiOpen); }}
            className="shrink-0 rounded px-2 py-1 text-xs text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-700">
            Assistant
          </button>
        )}
        <button type="button" onClick={() => setInviting(true)} className="shrink-0 rounded px-2 py-1 text-xs text-slate-600 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-700">
          Invite
        </button>
        <button type="button" onClick={() => void leave()} className="shrink-0 rounded px-2 py-1 text-xs text-slate-600 hover:bg-slate-100">
          Leave
        </button>
      </header>
      {error && <p role="alert" className="px-4 py-1 text-sm text-red-700">{error}</p>}
      <div className="flex min-h-0 flex-1">
        <div className={`${thread || aiOpen ? "hidden lg:flex" : "flex"} relative min-w-0 flex-1 flex-col`} data-testid="drop-zone"
          onDragOver={(e) => { if (e.dataTransfer.types.includes("Files")) { e.preventDefault(); setDragging(true); } }}
          onDragLeave={(e) => { if (e.currentTarget === e.target) setDragging(false); }}
          onDrop={(e) => {
            setDragging(false);
            if (e.dataTransfer.files.length) {
              e.preventDefault();
              addFiles([...e.dataTransfer.files]);
            }
          }}>
          {dragging && (
            <div className="pointer-events-none absolute inset-0 z-10 flex items-center justify-center border-4 border-dashed border-indigo-400 bg-indigo-50/80 text-lg font-semibold text-indigo-700">
              Drop files to send them to {direct ? "" : "#"}{name}
            </div>
          )}
          <MessageList client={client} room={room} />
          <p className="h-5 px-4 text-xs text-slate-500" data-testid="typing" aria-live="polite">{typing ?? ""}</p>
          <UploadList uploads={uploads} dismiss={dismiss} />
          {aiAvailable && <ReplySuggestions client={client} room={room} />}
          <Composer client={client} roomId={room.roomId} placeholder={`Message ${direct ? "" : "#"}${name}`} onFiles={addFiles} />
        </div>
        {thread && <ThreadPanel key={thread} client={client} room={room} rootId={thread} />}
        {aiOpen && !thread && aiAvailable && <AiDrawer client={client} roomId={room.roomId} label={`${direct ? "" : "#"}${name}`} />}
      </div>
      <JumpToMessage client={client} roomId={room.roomId} />
      {inviting && <InviteDialog client={client} roomId={room.roomId} roomLabel={`${direct ? "" : "#"}${name}`} onClose={() => setInviting(false)} />}
    </section>
  );
}
