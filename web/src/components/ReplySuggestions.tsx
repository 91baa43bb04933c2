"use client";

import { useState } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { describeAiError, suggestReplies } from "@/lib/ai";
import { isMainTimelineEvent } from "@/lib/relations";
import { useUi } from "@/lib/ui";
import type { RoomData } from "@/lib/types";

/** Above the composer: three short replies to the newest message from someone else, from the
 * person's AI server; picking one puts it in the composer to edit or send. */
export function ReplySuggestions({ client, room }: { client: MatrixClient; room: RoomData }) {
  const [state, setState] = useState<{ for: string; list: string[] } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const target = [...room.timeline].reverse().find((e) => e.type === "m.room.message" && !e.pending
    && !e.event_id.startsWith("~") && isMainTimelineEvent(e) && typeof e.content?.body === "string");
  if (!target || target.sender === client.userId) return null;
  const list = state?.for === target.event_id ? state.list : null;

  async function ask(eventId: string) {
    setBusy(true);
    setError(null);
    try {
      setState({ for: eventId, list: await suggestReplies(client, room.roomId, eventId) });
    } catch (e) {
      setError(describeAiError(e) ?? describeError(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="flex flex-wrap items-center gap-2 px-3 pt-2 text-sm" data-testid="reply-suggestions">
      {list === null ? (
        <button type="button" disabled={busy} onClick={() => void ask(target.event_id)}
          className="rounded-full border border-slate-300 px-3 py-0.5 text-xs text-slate-600 hover:bg-slate-100 disabled:opacity-50 dark:border-slate-600 dark:text-slate-300 dark:hover:bg-slate-700">
          {busy ? "Thinking…" : "Suggest replies"}
        </button>
      ) : list.map((s) => (
        <button key={s} type="button" data-testid="reply-suggestion"
          onClick={() => { useUi.getState().setDraft({ roomId: room.roomId, text: s }); setState(null); }}
          className="rounded-full border border-indigo-300 bg-indigo-50 px-3 py-0.5 text-xs text-indigo-800 hover:bg-indigo-100 dark:border-indigo-700 dark:bg-indigo-950 dark:text-indigo-200">
          {s}
        </button>
      ))}
      {error && <span role="alert" className="text-xs text-red-700">{error}</span>}
    </div>
  );
}
