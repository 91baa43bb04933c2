"use client";

import { useState, type FormEvent, type KeyboardEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { sendText } from "@/lib/actions";

export function Composer({ client, roomId, placeholder }: { client: MatrixClient; roomId: string; placeholder: string }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);

  function send(e?: FormEvent) {
    e?.preventDefault();
    const body = text.trim();
    if (!body) return;
    setText("");
    setError(null);
    sendText(client, roomId, body).catch((err) => setError(describeError(err)));
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    // Enter sends, Shift+Enter starts a new line, as in Slack.
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) send(e);
  }

  return (
    <form onSubmit={send} className="border-t border-slate-200 p-3">
      {error && <p role="alert" className="mb-1 text-xs text-red-600">{error}</p>}
      <div className="flex items-end gap-2 rounded-lg border border-slate-300 px-2 py-1 focus-within:border-indigo-500">
        <textarea
          aria-label="Message"
          data-testid="composer"
          rows={1}
          value={text}
          placeholder={placeholder}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKeyDown}
          className="max-h-40 min-h-[2rem] flex-1 resize-none bg-transparent py-1 focus:outline-none"
        />
        <button type="submit" className="rounded bg-indigo-600 px-3 py-1 text-sm font-semibold text-white disabled:opacity-50" disabled={!text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
