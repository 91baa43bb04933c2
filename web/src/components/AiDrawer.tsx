"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { describeAiError, getAiSettings, streamAnswer, streamSummary, type AiSettings, type SummaryScope } from "@/lib/ai";
import { askMessages, BrowserAiError, streamChat, summaryMessages, transcriptLines, type BrowserEndpoint } from "@/lib/aiBrowser";
import { roomEvents } from "@/lib/relations";
import { useRooms } from "@/lib/rooms";
import { useUi } from "@/lib/ui";

type Job = { kind: "summary"; scope: SummaryScope } | { kind: "ask"; question: string };

/** In an encrypted room the page itself calls the person's own endpoint; null when they have none. */
function browserEndpoint(s: AiSettings | null | undefined): BrowserEndpoint | null {
  if (!s?.endpoint) return null;
  return { url: s.endpoint, style: s.api_style, model: s.models.summary ?? s.server.summary_model ?? "llama3.2" };
}

/** The AI assistant beside a channel: "catch me up" on the channel or on what is unread, or a
 * question about it, the answer appearing piece by piece as the person's inference server writes
 * it. An encrypted channel never goes to the server's AI: the page builds the prompt from the
 * messages it decrypted and calls the person's own server directly. */
export function AiDrawer({ client, roomId, label }: { client: MatrixClient; roomId: string; label: string }) {
  const setAi = useUi((s) => s.setAi);
  const encrypted = useRooms((s) => s.rooms[roomId]?.encrypted === true);
  const settings = useQuery({ queryKey: ["ai-server", client.userId, "settings"], queryFn: () => getAiSettings(client), retry: false });
  const local = encrypted ? browserEndpoint(settings.data) : null;
  const blocked = encrypted && !local;
  const [question, setQuestion] = useState("");
  const [text, setText] = useState("");
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const ctl = useRef<AbortController | null>(null);
  const first = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    first.current?.focus();
    return () => ctl.current?.abort();
  }, []);

  async function inBrowser(ep: BrowserEndpoint, job: Job, onToken: (t: string) => void, signal: AbortSignal) {
    const room = useRooms.getState().rooms[roomId];
    const events = room ? roomEvents(room.timeline, room.related).filter((e) => !e.pending) : [];
    const lines = transcriptLines(events);
    if (!lines.length) throw new Error("There are no decrypted messages here to read yet.");
    const messages = job.kind === "ask" ? askMessages(lines, job.question) : summaryMessages(lines);
    await streamChat(ep, messages, onToken, signal);
  }

  async function run(job: Job) {
    ctl.current?.abort();
    const c = new AbortController();
    ctl.current = c;
    setText("");
    setError(null);
    setDone(false);
    setRunning(true);
    const onToken = (piece: string) => setText((t) => t + piece);
    try {
      if (local) await inBrowser(local, job, onToken, c.signal);
      else if (job.kind === "ask") await streamAnswer(client, roomId, job.question, onToken, c.signal);
      else await streamSummary(client, roomId, job.scope, onToken, c.signal);
      if (!c.signal.aborted) setDone(true);
    } catch (e) {
      if (!c.signal.aborted) {
        setError(describeAiError(e) ?? (e instanceof BrowserAiError ? e.message : describeError(e)));
      }
    } finally {
      if (ctl.current === c) setRunning(false);
    }
  }

  function stop() {
    ctl.current?.abort();
    setRunning(false);
  }

  const btn = "rounded border border-slate-300 px-2 py-1 text-sm hover:bg-slate-100 disabled:opacity-50 dark:border-slate-600 dark:hover:bg-slate-700";
  return (
    <aside aria-label="AI assistant" data-testid="ai-drawer"
      onKeyDown={(e) => { if (e.key === "Escape" && !e.defaultPrevented) setAi(false); }}
      className="flex w-full min-w-0 flex-col border-l border-slate-200 lg:w-96 dark:border-slate-700">
      <header className="flex items-center justify-between border-b border-slate-200 px-4 py-3 dark:border-slate-700">
        <h2 className="font-bold">Assistant</h2>
        <button type="button" aria-label="Close assistant" onClick={() => setAi(false)} className="rounded px-2 text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-700">✕</button>
      </header>
      <div className="flex flex-wrap gap-2 border-b border-slate-200 px-4 py-3 dark:border-slate-700">
        <button ref={first} type="button" className={btn} disabled={running || blocked} onClick={() => void run({ kind: "summary", scope: { kind: "channel" } })}>Catch me up</button>
        {!encrypted && <button type="button" className={btn} disabled={running} onClick={() => void run({ kind: "summary", scope: { kind: "unread" } })}>Summarize my unreads</button>}
        {running && <button type="button" className={btn} onClick={stop}>Stop</button>}
      </div>
      <form aria-label="Ask about this channel" className="flex gap-2 border-b border-slate-200 px-4 py-3 dark:border-slate-700"
        onSubmit={(e) => { e.preventDefault(); if (question.trim()) void run({ kind: "ask", question: question.trim() }); }}>
        <label htmlFor="ai-question" className="sr-only">Question about {label}</label>
        <input id="ai-question" data-testid="ai-question" value={question} maxLength={2000} disabled={blocked}
          onChange={(e) => setQuestion(e.target.value)} placeholder={`Ask about ${label}`}
          className="min-w-0 flex-1 rounded border border-slate-300 bg-transparent px-2 py-1 text-sm dark:border-slate-600" />
        <button type="submit" className={btn} disabled={running || blocked || !question.trim()}>Ask</button>
      </form>
      {encrypted && (
        <p data-testid="ai-in-browser" className="border-b border-slate-200 px-4 py-2 text-xs text-slate-600 dark:border-slate-700 dark:text-slate-300">
          {local
            ? "This channel is end-to-end encrypted: this browser sends the messages it decrypted straight to your own AI server, never to the homeserver's."
            : "This channel is end-to-end encrypted: its messages never go to the homeserver's AI. Set your own AI server in Settings to summarize it in this browser."}
        </p>
      )}
      <div className="min-h-0 flex-1 overflow-y-auto px-4 py-3 text-sm">
        {!text && !running && !error && <p className="text-slate-500">Summaries and answers about {label} come from your AI server and see only what you can read.</p>}
        {running && !text && <p className="text-slate-500" data-testid="ai-waiting">Reading {label}…</p>}
        {error && <p role="alert" className="text-red-700">{error}</p>}
        <p data-testid="ai-summary" data-done={done ? "true" : "false"} aria-live="polite" className="whitespace-pre-wrap break-words">{text}</p>
      </div>
    </aside>
  );
}

/** In a thread's panel: a summary of the thread, streamed like the channel's. */
export function ThreadSummary({ client, roomId, rootId }: { client: MatrixClient; roomId: string; rootId: string }) {
  const [text, setText] = useState("");
  const [state, setState] = useState<"idle" | "running" | "done">("idle");
  const [error, setError] = useState<string | null>(null);
  const ctl = useRef<AbortController | null>(null);
  useEffect(() => () => ctl.current?.abort(), []);

  async function go() {
    ctl.current?.abort();
    const c = new AbortController();
    ctl.current = c;
    setText("");
    setError(null);
    setState("running");
    try {
      await streamSummary(client, roomId, { kind: "thread", rootId }, (piece) => setText((t) => t + piece), c.signal);
      setState("done");
    } catch (e) {
      if (!c.signal.aborted) {
        setError(describeAiError(e) ?? describeError(e));
        setState("idle");
      }
    }
  }

  return (
    <div className="border-b border-slate-200 px-4 py-2 text-sm dark:border-slate-700" data-testid="thread-summary-box">
      <button type="button" disabled={state === "running"} onClick={() => void go()}
        className="rounded border border-slate-300 px-2 py-0.5 text-xs hover:bg-slate-100 disabled:opacity-50 dark:border-slate-600 dark:hover:bg-slate-700">
        {state === "running" ? "Summarizing…" : "Summarize thread"}
      </button>
      {error && <p role="alert" className="mt-1 text-xs text-red-700">{error}</p>}
      {text && <p data-testid="thread-ai-summary" data-done={state === "done" ? "true" : "false"} aria-live="polite"
        className="mt-1 whitespace-pre-wrap break-words">{text}</p>}
    </div>
  );
}
