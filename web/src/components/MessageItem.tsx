"use client";

import { memo, useEffect, useRef, useState, type KeyboardEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { editMessage, react, redactEvent } from "@/lib/messageActions";
import { displayContent, type Aggregation, type ReactionGroup } from "@/lib/relations";
import { memberName } from "@/lib/rooms";
import { useUi } from "@/lib/ui";
import type { MatrixEvent, RoomData } from "@/lib/types";
import { MessageBody } from "./MessageBody";

export const QUICK_REACTIONS: [string, string][] = [
  ["👍", "thumbs up"], ["❤️", "heart"], ["😂", "laughing"], ["🎉", "party"], ["👀", "eyes"], ["🙏", "thanks"],
  ["✅", "done"], ["🚀", "rocket"], ["😮", "surprised"], ["😢", "sad"], ["🔥", "fire"], ["👎", "thumbs down"],
];

function timeLabel(ts: number): string {
  return new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function EmojiPicker({ onPick, onClose }: { onPick: (key: string) => void; onClose: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.querySelector<HTMLElement>("button")?.focus();
    const onDown = (e: MouseEvent) => { if (!ref.current?.contains(e.target as Node)) onClose(); };
    window.addEventListener("mousedown", onDown);
    return () => window.removeEventListener("mousedown", onDown);
  }, [onClose]);
  return (
    <div ref={ref} role="group" aria-label="Pick a reaction" data-testid="emoji-picker"
      onKeyDown={(e) => { if (e.key === "Escape") { e.stopPropagation(); onClose(); } }}
      className="absolute right-2 top-8 z-20 grid grid-cols-6 gap-1 rounded-lg border border-slate-200 bg-white p-2 shadow-lg dark:border-slate-600 dark:bg-slate-800">
      {QUICK_REACTIONS.map(([emoji, name]) => (
        <button key={emoji} type="button" aria-label={`React with ${name}`} onClick={() => onPick(emoji)}
          className="rounded p-1 text-lg hover:bg-slate-100 focus:bg-slate-100 dark:hover:bg-slate-700">{emoji}</button>
      ))}
    </div>
  );
}

function Reactions({ groups, room, onToggle }: { groups: ReactionGroup[]; room: RoomData; onToggle: (g: ReactionGroup) => void }) {
  return (
    <div className="mt-1 flex flex-wrap gap-1" data-testid="reactions">
      {groups.map((g) => {
        const who = g.senders.map((u) => memberName(room, u)).join(", ");
        return (
          <button key={g.key} type="button" data-testid="reaction" data-key={g.key} aria-pressed={g.mine !== undefined}
            aria-label={`${g.key} ${g.senders.length}, from ${who}`} title={who} onClick={() => onToggle(g)}
            className={`rounded-full border px-2 text-sm ${g.mine ? "border-indigo-400 bg-indigo-50 dark:bg-indigo-900" : "border-slate-200 dark:border-slate-600"}`}>
            <span>{g.key}</span> <span data-testid="reaction-count">{g.senders.length}</span>
          </button>
        );
      })}
    </div>
  );
}

function EditBox({ initial, onSave, onCancel }: { initial: string; onSave: (text: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el) {
      el.focus();
      el.setSelectionRange(el.value.length, el.value.length);
    }
  }, []);
  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Escape") {
      e.preventDefault();
      onCancel();
    } else if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      if (text.trim()) onSave(text.trim());
    }
  }
  return (
    <div>
      <textarea ref={ref} aria-label="Edit message" data-testid="edit-box" value={text} rows={2}
        onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown}
        className="w-full resize-none rounded border border-indigo-400 bg-transparent p-1 focus:outline-none" />
      <p className="text-xs text-slate-500">Escape to cancel, Enter to save</p>
    </div>
  );
}

interface Props {
  client: MatrixClient;
  room: RoomData;
  ev: MatrixEvent;
  agg: Aggregation;
  grouped: boolean;
  /** Shown inside the thread panel: no thread button, no thread summary. */
  inThread?: boolean;
}

function MessageItemImpl({ client, room, ev, agg, grouped, inThread }: Props) {
  const editing = useUi((s) => s.editing === ev.event_id);
  const setEditing = useUi((s) => s.setEditing);
  const openThread = useUi((s) => s.openThread);
  const [picking, setPicking] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const mine = ev.sender === client.userId;
  const deleted = Boolean(ev.unsigned?.redacted_because) || Object.keys(ev.content ?? {}).length === 0;
  const real = !ev.pending && !ev.event_id.startsWith("~");
  const content = displayContent(ev, agg);
  const edited = agg.edits.has(ev.event_id) && !deleted;
  const groups = agg.reactions.get(ev.event_id) ?? [];
  const replies = inThread ? [] : (agg.threads.get(ev.event_id) ?? []);
  const fail = (e: unknown) => setError(describeError(e));

  function toggle(g: ReactionGroup) {
    setError(null);
    if (g.mine) {
      if (!g.mine.startsWith("~")) redactEvent(client, room.roomId, g.mine).catch(fail);
    } else {
      react(client, room.roomId, ev.event_id, g.key).catch(fail);
    }
  }

  function pick(key: string) {
    setPicking(false);
    const g = groups.find((x) => x.key === key);
    if (g) toggle(g);
    else react(client, room.roomId, ev.event_id, key).catch(fail);
  }

  const label = `${memberName(room, ev.sender)}, ${timeLabel(ev.origin_server_ts)}`;
  return (
    <article data-testid="message" data-event-id={ev.event_id} data-sender={ev.sender} aria-label={label} tabIndex={-1}
      className={`group relative px-4 hover:bg-slate-50 focus-within:bg-slate-50 dark:hover:bg-slate-800 dark:focus-within:bg-slate-800 ${grouped ? "py-0.5" : "pt-2 pb-0.5"} ${ev.pending ? "opacity-60" : ""}`}>
      {!grouped && (
        <header className="flex items-baseline gap-2">
          <span className="font-bold" data-testid="sender">{memberName(room, ev.sender)}</span>
          <time className="text-xs text-slate-500" dateTime={new Date(ev.origin_server_ts).toISOString()}>{timeLabel(ev.origin_server_ts)}</time>
        </header>
      )}
      {editing ? (
        <EditBox initial={typeof content.body === "string" ? content.body : ""} onCancel={() => setEditing(null)}
          onSave={(text) => {
            setEditing(null);
            editMessage(client, room.roomId, ev.event_id, text).catch(fail);
          }} />
      ) : (
        <div className="flex items-baseline gap-1">
          <div className="min-w-0 flex-1"><MessageBody ev={ev} content={content} /></div>
          {edited && <span className="shrink-0 text-xs text-slate-500" data-testid="edited">(edited)</span>}
        </div>
      )}
      {groups.length > 0 && <Reactions groups={groups} room={room} onToggle={toggle} />}
      {replies.length > 0 && (
        <button type="button" data-testid="thread-summary" onClick={() => openThread(ev.event_id)}
          className="mt-1 text-xs font-semibold text-indigo-700 hover:underline dark:text-indigo-300">
          {replies.length} {replies.length === 1 ? "reply" : "replies"}
        </button>
      )}
      {ev.failed && <p className="text-xs text-red-600" role="alert">Not sent.</p>}
      {error && <p className="text-xs text-red-600" role="alert">{error}</p>}
      {real && !deleted && !editing && (
        <div role="toolbar" aria-label="Message actions"
          className="absolute right-2 top-0 flex gap-1 rounded border border-slate-200 bg-white px-1 opacity-0 shadow-sm group-hover:opacity-100 group-focus-within:opacity-100 dark:border-slate-600 dark:bg-slate-800">
          <button type="button" aria-label="Add reaction" onClick={() => setPicking(true)} className="px-1 hover:bg-slate-100 dark:hover:bg-slate-700">☺</button>
          {!inThread && (
            <button type="button" aria-label="Reply in thread" onClick={() => openThread(ev.event_id)} className="px-1 hover:bg-slate-100 dark:hover:bg-slate-700">💬</button>
          )}
          {mine && ev.type === "m.room.message" && (
            <button type="button" aria-label="Edit message" onClick={() => setEditing(ev.event_id)} className="px-1 hover:bg-slate-100 dark:hover:bg-slate-700">✎</button>
          )}
          {mine && (
            <button type="button" aria-label="Delete message" className="px-1 hover:bg-slate-100 dark:hover:bg-slate-700"
              onClick={() => { setError(null); redactEvent(client, room.roomId, ev.event_id).catch(fail); }}>🗑</button>
          )}
        </div>
      )}
      {picking && <EmojiPicker onPick={pick} onClose={() => setPicking(false)} />}
    </article>
  );
}

export const MessageItem = memo(MessageItemImpl);
