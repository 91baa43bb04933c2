"use client";

import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { loadOlder } from "@/lib/actions";
import { memberName } from "@/lib/rooms";
import type { MatrixEvent, RoomData } from "@/lib/types";
import { aggregate, isMainTimelineEvent, roomEvents } from "@/lib/relations";
import { MessageItem } from "./MessageItem";

const GROUP_MS = 5 * 60 * 1000;
const LOAD_MARGIN_PX = 150;

function dayLabel(ts: number): string {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/** A line for a membership or channel change, or null for events the timeline does not show. */
function notice(room: RoomData, ev: MatrixEvent): string | null {
  const who = memberName(room, ev.type === "m.room.member" ? (ev.state_key ?? ev.sender) : ev.sender);
  const c = ev.content ?? {};
  switch (ev.type) {
    case "m.room.member":
      switch (c.membership) {
        case "join": {
          const before = (ev.unsigned?.prev_content as { membership?: string; displayname?: string } | undefined);
          if (before?.membership !== "join") return `${who} joined`;
          if (before.displayname !== c.displayname) return `${ev.state_key ?? ev.sender} is now known as ${who}`;
          return null;
        }
        case "leave": return ev.sender === ev.state_key ? `${who} left` : `${who} was removed`;
        case "invite": return `${memberName(room, ev.sender)} invited ${who}`;
        case "ban": return `${who} was banned`;
        default: return null;
      }
    case "m.room.topic":
      return `${who} set the topic: ${typeof c.topic === "string" ? c.topic : ""}`;
    case "m.room.name":
      return `${who} renamed the channel to ${typeof c.name === "string" ? c.name : ""}`;
    case "m.room.create":
      return `${who} created this channel`;
    default:
      return null;
  }
}

export function MessageList({ client, room }: { client: MatrixClient; room: RoomData }) {
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const anchor = useRef<{ height: number; top: number; first: string | undefined } | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const loadingRef = useRef(false);
  const { roomId, prevBatch } = room;

  const older = useCallback(async () => {
    const el = scroller.current;
    if (!el || loadingRef.current || !prevBatch) return;
    loadingRef.current = true;
    setLoading(true);
    setError(null);
    anchor.current = { height: el.scrollHeight, top: el.scrollTop, first: room.timeline[0]?.event_id };
    try {
      await loadOlder(client, roomId);
    } catch (e) {
      anchor.current = null;
      setError(describeError(e));
    } finally {
      loadingRef.current = false;
      setLoading(false);
    }
  }, [client, roomId, prevBatch, room.timeline]);

  // Keep the view where it was when older events are put above it; follow new ones at the bottom.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const a = anchor.current;
    if (a && a.first !== room.timeline[0]?.event_id) {
      el.scrollTop = el.scrollHeight - a.height + a.top;
      anchor.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [room.timeline]);

  // A short channel does not scroll, so it fills itself until it can (or history ends).
  useEffect(() => {
    const el = scroller.current;
    if (el && prevBatch && !loading && !error && el.scrollHeight <= el.clientHeight + LOAD_MARGIN_PX) void older();
  }, [prevBatch, loading, error, older, room.timeline.length]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < LOAD_MARGIN_PX) void older();
  }

  const me = client.userId;
  const agg = useMemo(() => aggregate(roomEvents(room.timeline, room.related), me), [room.timeline, room.related, me]);
  const rows: React.ReactNode[] = [];
  let prev: MatrixEvent | null = null;
  let prevDay = "";
  for (const ev of room.timeline) {
    if (!isMainTimelineEvent(ev)) continue;
    const day = new Date(ev.origin_server_ts).toDateString();
    if (day !== prevDay) {
      rows.push(
        <div key={`day-${day}-${ev.event_id}`} role="separator" data-testid="day-separator" className="my-2 flex items-center gap-2 text-xs font-semibold text-slate-500">
          <span className="h-px flex-1 bg-slate-200" />{dayLabel(ev.origin_server_ts)}<span className="h-px flex-1 bg-slate-200" />
        </div>,
      );
      prevDay = day;
      prev = null;
    }
    if (ev.type !== "m.room.message" && ev.type !== "m.room.encrypted") {
      const text = notice(room, ev);
      if (text) rows.push(<div key={ev.event_id} className="px-4 py-0.5 text-xs italic text-slate-500">{text}</div>);
      if (text) prev = null;
      continue;
    }
    const grouped = prev !== null && prev.sender === ev.sender && ev.origin_server_ts - prev.origin_server_ts < GROUP_MS;
    rows.push(<MessageItem key={ev.event_id} client={client} room={room} ev={ev} agg={agg} grouped={grouped} />);
    prev = ev;
  }

  return (
    <div ref={scroller} onScroll={onScroll} data-testid="timeline" className="min-h-0 flex-1 overflow-y-auto py-2" aria-live="polite">
      {prevBatch === null ? (
        <p className="px-4 py-2 text-xs text-slate-400" data-testid="history-start">This is the start of the channel.</p>
      ) : (
        <p className="px-4 py-2 text-xs text-slate-400">{loading ? "Loading older messages…" : " "}</p>
      )}
      {error && <p role="alert" className="px-4 text-xs text-red-600">{error}</p>}
      {rows}
    </div>
  );
}
