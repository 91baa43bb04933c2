"use client";

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { sendEvent, sendText } from "@/lib/actions";
import { memberSuggestions, mentionContent, mentionQuery, type Mention } from "@/lib/mentions";
import { sendThreadReply, setTyping } from "@/lib/messageActions";
import { listCommands, matchingCommands, parseCommand, runCommand } from "@/lib/plugins";
import { isMainTimelineEvent } from "@/lib/relations";
import { useRooms } from "@/lib/rooms";
import { useUi } from "@/lib/ui";
import { PresenceDot } from "./PresenceDot";
import { Suggestions, type Suggestion } from "./Suggestions";

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
  const [caret, setCaret] = useState(0);
  const [active, setActive] = useState(0);
  const [closed, setClosed] = useState(false);
  const mentions = useRef<Mention[]>([]);
  const listId = useId();
  const qc = useQueryClient();
  const room = useRooms((s) => s.rooms[roomId]);
  // Slash commands exist in the channel composer only; the list is read again whenever a
  // command starts, so a plugin enabled a moment ago is offered.
  const commandsKey = ["commands", roomId];
  const commands = useQuery({
    queryKey: commandsKey, queryFn: () => listCommands(client, roomId),
    enabled: !thread && text.startsWith("/"), staleTime: 5_000,
  });

  const mq = mentionQuery(text, caret);
  let kind: "command" | "mention" | null = null;
  let items: Suggestion[] = [];
  let picks: string[] = [];
  if (!closed && !thread && commands.data && text.startsWith("/")) {
    const found = matchingCommands(text, commands.data);
    kind = "command";
    picks = found.map((c) => c.command);
    items = found.map((c) => ({
      key: `${c.plugin}/${c.command}`,
      label: <span className="font-mono font-semibold">/{c.command}</span>,
      detail: [c.usage, c.description].filter(Boolean).join(" — "),
    }));
  } else if (!closed && mq && room) {
    const found = memberSuggestions(room, client.userId, mq.query);
    kind = "mention";
    picks = found.map((m) => m.userId);
    items = found.map((m) => ({
      key: m.userId,
      label: <><PresenceDot userId={m.userId} /><span className="font-semibold">{m.name}</span></>,
      detail: m.userId,
    }));
  }
  const open = items.length > 0;
  const current = Math.min(active, Math.max(0, items.length - 1));

  function pick(i: number) {
    const el = box.current;
    if (kind === "command") {
      const next = `/${picks[i]} `;
      setText(next);
      setCaret(next.length);
      requestAnimationFrame(() => el?.setSelectionRange(next.length, next.length));
    } else if (kind === "mention" && mq && room) {
      const userId = picks[i];
      const name = memberSuggestions(room, client.userId, mq.query).find((m) => m.userId === userId)?.name ?? userId;
      const label = `@${name}`;
      const next = `${text.slice(0, mq.start)}${label} ${text.slice(caret)}`;
      const at = mq.start + label.length + 1;
      mentions.current = [...mentions.current.filter((m) => m.userId !== userId), { userId, label }];
      setText(next);
      setCaret(at);
      requestAnimationFrame(() => el?.setSelectionRange(at, at));
    }
    setActive(0);
    el?.focus();
  }

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

  function onChange(value: string, at: number) {
    setText(value);
    setCaret(at);
    setActive(0);
    setClosed(false);
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
    setCaret(0);
    setError(null);
    stopTyping();
    const picked = mentions.current;
    mentions.current = [];
    const sent = thread
      ? sendThreadReply(client, roomId, thread.rootId, thread.lastId, body)
      : sendMain(body, picked);
    sent.catch((err) => setError(describeError(err)));
  }

  async function sendMain(body: string, picked: Mention[]): Promise<void> {
    if (body.startsWith("/")) {
      const known = await qc.fetchQuery({ queryKey: commandsKey, queryFn: () => listCommands(client, roomId), staleTime: 5_000 });
      const cmd = parseCommand(body, known);
      if (cmd) {
        await runCommand(client, roomId, cmd.command, cmd.args);
        return;
      }
    }
    if (picked.length > 0) await sendEvent(client, roomId, "m.room.message", mentionContent(body, picked));
    else await sendText(client, roomId, body);
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (open) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setActive((current + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length);
        return;
      }
      if ((e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) || e.key === "Tab") {
        e.preventDefault();
        pick(current);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        setClosed(true);
        return;
      }
    }
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
      {open && (
        <Suggestions id={listId} title={kind === "command" ? "Slash commands" : "People"} items={items} active={current}
          onPick={pick} onHover={setActive} />
      )}
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
          aria-autocomplete="list"
          aria-controls={open ? listId : undefined}
          aria-activedescendant={open ? `${listId}-${current}` : undefined}
          data-testid={thread ? "thread-composer" : "composer"}
          rows={1}
          value={text}
          placeholder={placeholder}
          onChange={(e) => onChange(e.target.value, e.target.selectionStart ?? e.target.value.length)}
          onSelect={(e) => setCaret(e.currentTarget.selectionStart ?? 0)}
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
