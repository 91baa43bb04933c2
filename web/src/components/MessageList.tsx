"use client";

import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { loadOlder } from "@/lib/actions";
import { memberName } from "@/lib/rooms";
import type { MatrixEvent, RoomData } from "@/lib/types";
import { aggregate, isMainTimelineEvent, roomEvents, type Aggregation } from "@/lib/relations";
import { MessageItem } from "./MessageItem";

const GROUP_MS = 5 * 60 * 1000;
const LOAD_MARGIN_PX = 150;
/** Channels with more rows than this keep only the rows near the viewport in the DOM. */
const WINDOW_FROM_ROWS = 200;
const ESTIMATED_ROW_PX = 44;
const OVERSCAN_PX = 800;
/** Room left above the "new messages" divider when a channel opens there. */
const NEW_MARGIN_PX = 40;

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

interface Row {
  key: string;
  node: React.ReactNode;
}

/** The first message someone else sent after the user's fully-read marker, if the marker is in
 * the loaded timeline: where the "new messages" divider goes. */
export function firstUnread(room: RoomData, me: string): string | null {
  if (!room.fullyRead) return null;
  const at = room.timeline.findIndex((e) => e.event_id === room.fullyRead);
  if (at < 0) return null;
  for (const ev of room.timeline.slice(at + 1)) {
    if (ev.pending || ev.event_id.startsWith("~") || !isMainTimelineEvent(ev)) continue;
    if (ev.sender !== me && (ev.type === "m.room.message" || ev.type === "m.room.encrypted")) return ev.event_id;
  }
  return null;
}

const NEW_KEY = "new-messages";

function rowsOf(client: MatrixClient, room: RoomData, agg: Aggregation, unreadFrom: string | null): Row[] {
  const rows: Row[] = [];
  let prev: MatrixEvent | null = null;
  let prevDay = "";
  const notices = room.notices ?? [];
  let n = 0;
  const flushNotices = (before: number) => {
    for (; n < notices.length && notices[n].ts < before; n++) {
      const x = notices[n];
      rows.push({ key: `notice-${x.id}`, node: (
        <div data-testid="ephemeral-notice" className="mx-4 my-1 rounded border-l-4 border-slate-400 bg-slate-50 px-3 py-1 text-sm dark:bg-slate-800">
          <div className="text-xs text-slate-500">
            <span className="font-semibold">{memberName(room, x.sender)}</span> · Only visible to you
          </div>
          <p className="whitespace-pre-wrap break-words" data-testid="notice-body">{x.body}</p>
        </div>
      ) });
      prev = null;
    }
  };
  for (const ev of room.timeline) {
    if (!isMainTimelineEvent(ev)) continue;
    flushNotices(ev.origin_server_ts);
    const day = new Date(ev.origin_server_ts).toDateString();
    if (day !== prevDay) {
      rows.push({ key: `day-${day}-${ev.event_id}`, node: (
        <div role="separator" data-testid="day-separator" className="my-2 flex items-center gap-2 text-xs font-semibold text-slate-500">
          <span className="h-px flex-1 bg-slate-200" />{dayLabel(ev.origin_server_ts)}<span className="h-px flex-1 bg-slate-200" />
        </div>
      ) });
      prevDay = day;
      prev = null;
    }
    if (ev.event_id === unreadFrom) {
      rows.push({ key: NEW_KEY, node: (
        <div role="separator" aria-label="New messages" data-testid="new-messages" className="my-1 flex items-center gap-2 text-xs font-semibold text-red-600">
          <span className="h-px flex-1 bg-red-400" />New messages<span className="h-px flex-1 bg-red-400" />
        </div>
      ) });
      prev = null;
    }
    if (ev.type !== "m.room.message" && ev.type !== "m.room.encrypted") {
      const text = notice(room, ev);
      if (text) {
        rows.push({ key: ev.event_id, node: <div className="px-4 py-0.5 text-xs italic text-slate-500">{text}</div> });
        prev = null;
      }
      continue;
    }
    const grouped = prev !== null && prev.sender === ev.sender && ev.origin_server_ts - prev.origin_server_ts < GROUP_MS;
    rows.push({ key: ev.event_id, node: <MessageItem client={client} room={room} ev={ev} agg={agg} grouped={grouped} /> });
    prev = ev;
  }
  flushNotices(Infinity);
  return rows;
}

/** First index whose row ends below `y` (tops has one more entry than rows: the total height). */
function rowAt(tops: number[], y: number): number {
  let lo = 0;
  let hi = tops.length - 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tops[mid + 1] <= y) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo);
}

/**
 * The channel's timeline. Long channels are windowed: only the rows near the viewport are in the
 * DOM, between two spacers sized from measured heights (an estimate for rows never shown), so
 * 10,000 messages scroll like 50. The view is anchored to a row, not to pixels: loading older
 * history above or a row changing height leaves what the person reads where it was, and a view at
 * the bottom follows new messages.
 */
export function MessageList({ client, room }: { client: MatrixClient; room: RoomData }) {
  const scroller = useRef<HTMLDivElement>(null);
  const inner = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const anchor = useRef<{ key: string; delta: number } | null>(null);
  const heights = useRef(new Map<string, number>());
  const [measured, setMeasured] = useState(0);
  const [range, setRange] = useState<[number, number]>([0, 0]);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const loadingRef = useRef(false);
  const { roomId, prevBatch } = room;

  const me = client.userId;
  const agg = useMemo(() => aggregate(roomEvents(room.timeline, room.related), me), [room.timeline, room.related, me]);
  // Where the unread part began when the channel was opened; reading it does not move the line.
  const [unreadFrom] = useState(() => firstUnread(room, me));
  const shownUnread = useRef(false);
  const rows = useMemo(() => rowsOf(client, room, agg, unreadFrom), [client, room, agg, unreadFrom]);
  const windowed = rows.length > WINDOW_FROM_ROWS;
  // measured is the version of the heights map: offsets are recomputed when a row's size changes.
  const tops = useMemo(() => {
    const t = new Array<number>(rows.length + 1);
    t[0] = 0;
    for (let i = 0; i < rows.length; i++) t[i + 1] = t[i] + (heights.current.get(rows[i].key) ?? ESTIMATED_ROW_PX);
    return t;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [rows, measured]);

  const observer = useMemo(() => typeof ResizeObserver === "undefined" ? null : new ResizeObserver((entries) => {
    let changed = false;
    for (const e of entries) {
      const key = (e.target as HTMLElement).dataset.row;
      const h = (e.target as HTMLElement).offsetHeight;
      if (key && h > 0 && heights.current.get(key) !== h) {
        heights.current.set(key, h);
        changed = true;
      }
    }
    if (changed) setMeasured((v) => v + 1);
  }), []);
  useEffect(() => () => observer?.disconnect(), [observer]);

  const measure = useCallback((el: HTMLDivElement | null) => {
    if (!el || !observer) return;
    const key = el.dataset.row;
    if (key && !heights.current.has(key)) heights.current.set(key, el.offsetHeight || ESTIMATED_ROW_PX);
    observer.observe(el);
    return () => observer.unobserve(el);
  }, [observer]);

  const updateRange = useCallback(() => {
    const el = scroller.current;
    if (!el || !windowed) return;
    const top = el.scrollTop - (inner.current?.offsetTop ?? 0);
    const start = rowAt(tops, top - OVERSCAN_PX);
    const end = Math.min(rows.length, rowAt(tops, top + el.clientHeight + OVERSCAN_PX) + 1);
    setRange((r) => (r[0] === start && r[1] === end ? r : [start, end]));
  }, [tops, rows.length, windowed]);

  const older = useCallback(async () => {
    if (loadingRef.current || !prevBatch) return;
    loadingRef.current = true;
    setLoading(true);
    setError(null);
    try {
      await loadOlder(client, roomId);
    } catch (e) {
      setError(describeError(e));
    } finally {
      loadingRef.current = false;
      setLoading(false);
    }
  }, [client, roomId, prevBatch]);

  // Keep the anchored row where it was (older events above it, rows changing height); follow new
  // ones at the bottom. Then fix which rows are in the window, before the browser paints.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const offset = inner.current?.offsetTop ?? 0;
    if (!shownUnread.current && unreadFrom) {
      // Opening a channel with more unread than fits: start at the divider, not at the bottom.
      shownUnread.current = true;
      const i = rows.findIndex((r) => r.key === NEW_KEY);
      if (i >= 0 && offset + tops[i] - NEW_MARGIN_PX < el.scrollHeight - el.clientHeight) {
        atBottom.current = false;
        anchor.current = { key: NEW_KEY, delta: NEW_MARGIN_PX };
      }
    }
    const a = anchor.current;
    if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    } else if (a) {
      const i = rows.findIndex((r) => r.key === a.key);
      if (i >= 0) {
        const want = offset + tops[i] - a.delta;
        if (Math.abs(el.scrollTop - want) > 1) el.scrollTop = want;
      }
    }
    updateRange();
  }, [rows, tops, updateRange, unreadFrom]);

  // A short channel does not scroll, so it fills itself until it can (or history ends).
  useEffect(() => {
    const el = scroller.current;
    if (el && prevBatch && !loading && !error && el.scrollHeight <= el.clientHeight + LOAD_MARGIN_PX) void older();
  }, [prevBatch, loading, error, older, room.timeline.length]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    const top = el.scrollTop - (inner.current?.offsetTop ?? 0);
    // Anchor on an event's row: a day separator's key names the day's first event, which
    // changes when older events of that day arrive.
    let i = rowAt(tops, Math.max(0, top));
    while (i < rows.length - 1 && rows[i].key.startsWith("day-")) i++;
    anchor.current = rows[i] ? { key: rows[i].key, delta: tops[i] - top } : null;
    updateRange();
    if (el.scrollTop < LOAD_MARGIN_PX) void older();
  }

  const [start, end] = windowed ? range : [0, rows.length];
  return (
    <div ref={scroller} onScroll={onScroll} data-testid="timeline" data-rows={rows.length}
      className="min-h-0 flex-1 overflow-y-auto py-2 [overflow-anchor:none]" aria-live="polite">
      {prevBatch === null ? (
        <p className="px-4 py-2 text-xs text-slate-500" data-testid="history-start">This is the start of the channel.</p>
      ) : (
        <p className="px-4 py-2 text-xs text-slate-500">{loading ? "Loading older messages…" : " "}</p>
      )}
      {error && <p role="alert" className="px-4 text-xs text-red-600">{error}</p>}
      <div ref={inner}>
        {windowed && <div aria-hidden="true" style={{ height: tops[start] }} />}
        {rows.slice(start, end).map((r) => (
          <div key={r.key} data-row={r.key} ref={measure} className="flow-root">{r.node}</div>
        ))}
        {windowed && <div aria-hidden="true" style={{ height: tops[rows.length] - tops[end] }} />}
      </div>
    </div>
  );
}
