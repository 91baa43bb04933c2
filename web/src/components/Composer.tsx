"use client";

import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { sendText } from "@/lib/actions";
import { sendThreadReply, setTyping } from "@/lib/messageActions";
import { isMainTimelineEvent } from "@/lib/relations";
import { useRooms } from "@/lib/rooms";
import { useUi } from "@/lib/ui";

const TYPING_RESEND_MS = 10_000;
const TYPING_IDLE_MS = 5_000;

/** The newest own message in the main timeline that can still be edited. */
function lastOwnMessage(roomId: string, me: string): string | null {
  const tl = useRooms.getState().rooms[roomId]?.timeline ?? [];
  for (let i = tl.length - 1; i >= 0; i--) {
    const e = tl[i];
    if (e.sender !== me || e.type !== "m.room.message" || !isMainTimelineEvent(e)) continue;
    if (e.pending || e.event_id.startsWith("~") || Object.keys(e.content ?? {}).length === 0) return null;
    return e.event_id;
  }
  return null;
}

export function Composer({ client, roomId, placeholder, thread, label = "Message", onFiles }: {
  client: MatrixClient; roomId: string; placeholder: string; label?: string;
  /** Files attached with the button or pasted into the box. */
  onFiles?: (files: File[]) => void;
  /** Replies go into this thread (root and newest event) instead of the channel. */
  thread?: { rootId: string; lastId: string };
}) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const typingSent = useRef(0);
  const idle = useRef<ReturnType<typeof setTimeout> | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const box = useRef<HTMLTextAreaElement>(null);
  const draft = useUi((s) => s.draft);

  // A picked reply suggestion lands here, ready to edit or send.
  useEffect(() => {
    if (!draft || thread || draft.roomId !== roomId) return;
    setText(draft.text);
    useUi.getState().setDraft(null);
    box.current?.focus();
  }, [draft, thread, roomId]);

  function stopTyping() {
    if (idle.current) clearTimeout(idle.current);
    idle.current = null;
    if (typingSent.current) {
      typingSent.current = 0;
      setTyping(client, roomId, false).catch(() => undefined);
    }
  }

  // Leaving the channel (or the page) ends "is typing…" for the others at once.
  useEffect(() => () => {
    if (idle.current) clearTimeout(idle.current);
    if (typingSent.current) setTyping(client, roomId, false).catch(() => undefined);
  }, [client, roomId]);

  function onChange(value: string) {
    setText(value);
    if (!value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - typingSent.current > TYPING_RESEND_MS) {
      typingSent.current = now;
      setTyping(client, roomId, true).catch(() => undefined);
    }
    if (idle.current) clearTimeout(idle.current);
    idle.current = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function send(e?: FormEvent) {
    e?.preventDefault();
    const body = text.trim();
    if (!body) return;
    setText("");
    setError(null);
    stopTyping();
    const sent = thread
      ? sendThreadReply(client, roomId, thread.rootId, thread.lastId, body)
      : sendText(client, roomId, body);
    sent.catch((err) => setError(describeError(err)));
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    // Enter sends, Shift+Enter starts a new line, Up in an empty box edits the last message: as in Slack.
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      send(e);
    } else if (e.key === "ArrowUp" && !text && !thread) {
      const last = lastOwnMessage(roomId, client.userId);
      if (last) {
        e.preventDefault();
        useUi.getState().setEditing(last);
      }
    }
  }

  return (
    <form onSubmit={send} className="border-t border-slate-200 p-3 dark:border-slate-700">
      {error && <p role="alert" className="mb-1 text-xs text-red-600">{error}</p>}
      <div className="flex items-end gap-2 rounded-lg border border-slate-300 px-2 py-1 focus-within:border-indigo-500 dark:border-slate-600">
        {onFiles && (
          <>
            <button type="button" aria-label="Attach files" onClick={() => fileInput.current?.click()}
              className="rounded px-1 py-1 text-lg leading-none text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-700">＋</button>
            <input ref={fileInput} type="file" multiple hidden data-testid="file-input"
              onChange={(e) => { const f = [...(e.target.files ?? [])]; e.target.value = ""; if (f.length) onFiles(f); }} />
          </>
        )}
        <textarea
          ref={box}
          aria-label={label}
          data-testid={thread ? "thread-composer" : "composer"}
          rows={1}
          value={text}
          placeholder={placeholder}
          onChange={(e) => onChange(e.target.value)}
          onKeyDown={onKeyDown}
          onPaste={(e) => {
            const files = [...e.clipboardData.files];
            if (files.length && onFiles) {
              e.preventDefault();
              onFiles(files);
            }
          }}
          className="max-h-40 min-h-[2rem] flex-1 resize-none bg-transparent py-1 focus:outline-none"
        />
        <button type="submit" className="rounded bg-indigo-600 px-3 py-1 text-sm font-semibold text-white disabled:opacity-50" disabled={!text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
