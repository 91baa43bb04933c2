"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useRef } from "react";
import { getAiSettings } from "@/lib/ai";
import type { MatrixClient } from "@/lib/api";
import { loadThread } from "@/lib/messageActions";
import { aggregate, roomEvents } from "@/lib/relations";
import { useUi } from "@/lib/ui";
import type { RoomData } from "@/lib/types";
import { ThreadSummary } from "./AiDrawer";
import { Composer } from "./Composer";
import { MessageItem } from "./MessageItem";

/** A thread beside the channel: its root, the replies, and a composer that answers in it. */
export function ThreadPanel({ client, room, rootId }: { client: MatrixClient; room: RoomData; rootId: string }) {
  const openThread = useUi((s) => s.openThread);
  const ref = useRef<HTMLElement>(null);
  const events = useMemo(() => roomEvents(room.timeline, room.related), [room.timeline, room.related]);
  const agg = useMemo(() => aggregate(events, client.userId), [events, client.userId]);
  const root = events.find((e) => e.event_id === rootId);
  const replies = agg.threads.get(rootId) ?? [];
  const lastId = replies.length ? replies[replies.length - 1].event_id : rootId;
  const ai = useQuery({ queryKey: ["ai-server", client.userId, "settings"], queryFn: () => getAiSettings(client), retry: false });

  useEffect(() => {
    loadThread(client, room.roomId, rootId).catch(() => undefined);
    ref.current?.querySelector<HTMLElement>("textarea")?.focus();
  }, [client, room.roomId, rootId]);

  return (
    <aside ref={ref} aria-label="Thread" data-testid="thread-panel"
      onKeyDown={(e) => { if (e.key === "Escape" && !e.defaultPrevented) openThread(null); }}
      className="flex w-full min-w-0 flex-col border-l border-slate-200 lg:w-96 dark:border-slate-700">
      <header className="flex items-center justify-between border-b border-slate-200 px-4 py-3 dark:border-slate-700">
        <h2 className="font-bold">Thread</h2>
        <button type="button" aria-label="Close thread" onClick={() => openThread(null)} className="rounded px-2 text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-700">✕</button>
      </header>
      {ai.data?.available && <ThreadSummary client={client} roomId={room.roomId} rootId={rootId} />}
      <div className="min-h-0 flex-1 overflow-y-auto py-2" data-testid="thread-timeline">
        {root ? <MessageItem client={client} room={room} ev={root} agg={agg} grouped={false} inThread /> : (
          <p className="px-4 text-sm text-slate-500">The first message of this thread is not loaded.</p>
        )}
        <p className="my-2 px-4 text-xs font-semibold text-slate-500" role="separator">
          {replies.length} {replies.length === 1 ? "reply" : "replies"}
        </p>
        {replies.map((ev, i) => (
          <MessageItem key={ev.event_id} client={client} room={room} ev={ev} agg={agg} inThread
            grouped={i > 0 && replies[i - 1].sender === ev.sender} />
        ))}
      </div>
      <Composer client={client} roomId={room.roomId} placeholder="Reply…" label="Reply in thread" thread={{ rootId, lastId }} />
    </aside>
  );
}
