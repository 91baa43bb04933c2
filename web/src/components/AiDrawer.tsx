"use client";

import { useEffect, useRef, useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { describeAiError, streamSummary, type SummaryScope } from "@/lib/ai";
import { useUi } from "@/lib/ui";

/** The AI assistant beside a channel: "catch me up" on the channel or on what is unread, the
 * summary appearing piece by piece as the person's inference server writes it. */
export function AiDrawer({ client, roomId, label }: { client: MatrixClient; roomId: string; label: string }) {
  const setAi = useUi((s) => s.setAi);
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

  async function summarize(scope: SummaryScope) {
    ctl.current?.abort();
    const c = new AbortController();
    ctl.current = c;
    setText("");
    setError(null);
    setDone(false);
    setRunning(true);
    try {
      await streamSummary(client, roomId, scope, (piece) => setText((t) => t + piece), c.signal);
      if (!c.signal.aborted) setDone(true);
    } catch (e) {
      if (!c.signal.aborted) setError(describeAiError(e) ?? describeError(e));
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
        <button ref={first} type="button" className={btn} disabled={running} onClick={() => void summarize({ kind: "channel" })}>Catch me up</button>
        <button type="button" className={btn} disabled={running} onClick={() => void summarize({ kind: "unread" })}>Summarize my unreads</button>
        {running && <button type="button" className={btn} onClick={stop}>Stop</button>}
      </div>
      <div className="min-h-0 flex-1 overflow-y-auto px-4 py-3 text-sm">
        {!text && !running && !error && <p className="text-slate-500">Summaries of {label} come from your AI server and see only what you can read.</p>}
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
