"use client";

import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import {
  accountSettings, getRuleset, parseKeywords, roomLevel, setAccountLevel, setKeywords, setRoomLevel,
  type AccountLevel, type RoomLevel,
} from "@/lib/notifications";
import { currentSubscription, disableWebPush, enableWebPush } from "@/lib/webpush";

const primary = "rounded bg-indigo-600 px-3 py-1.5 text-sm font-semibold text-white disabled:opacity-60";
const input = "mt-1 w-full rounded-md border border-slate-300 bg-transparent px-3 py-2 font-normal focus:border-indigo-500 focus:outline-none dark:border-slate-600";

export function useRuleset(client: MatrixClient) {
  return useQuery({ queryKey: ["pushrules", client.userId], queryFn: () => getRuleset(client), staleTime: 0 });
}

const ACCOUNT_CHOICES: [AccountLevel, string][] = [
  ["all", "All new messages"],
  ["mentions", "Direct messages, mentions and keywords"],
  ["off", "Nothing"],
];

/** The account's notification level and keywords, saved as push rules. */
export function AccountNotifications({ client }: { client: MatrixClient }) {
  const qc = useQueryClient();
  const rules = useRuleset(client);
  const current = rules.data ? accountSettings(rules.data) : null;
  const [level, setLevel] = useState<AccountLevel | null>(null);
  const [keywords, setKw] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);

  async function save(e: FormEvent) {
    e.preventDefault();
    if (!rules.data || !current) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await setAccountLevel(client, level ?? current.account);
      await setKeywords(client, rules.data, parseKeywords(keywords ?? current.keywords.join(", ")));
      setDone("Saved.");
    } catch (err) {
      setError(describeError(err));
    } finally {
      await qc.invalidateQueries({ queryKey: ["pushrules", client.userId] });
      setLevel(null);
      setKw(null);
      setBusy(false);
    }
  }

  return (
    <form onSubmit={save} aria-label="Notifications" className="space-y-2 border-b border-slate-200 pb-4 dark:border-slate-700">
      <h3 className="font-semibold">Notifications</h3>
      {rules.error && <p role="alert" className="text-sm text-red-700">{describeError(rules.error)}</p>}
      <fieldset className="space-y-1 text-sm">
        <legend className="font-medium">Notify me about</legend>
        {ACCOUNT_CHOICES.map(([v, text]) => (
          <label key={v} className="flex items-center gap-2">
            <input type="radio" name="notify-level" value={v} disabled={!current}
              checked={(level ?? current?.account) === v} onChange={() => setLevel(v)} />
            {text}
          </label>
        ))}
      </fieldset>
      <label className="block text-sm font-medium">Keywords (comma-separated, always highlighted)
        <input className={input} value={keywords ?? current?.keywords.join(", ") ?? ""} disabled={!current}
          onChange={(e) => setKw(e.target.value)} placeholder="deploy, outage" />
      </label>
      {error && <p role="alert" className="text-sm text-red-700">{error}</p>}
      {done && <p role="status" className="text-sm text-green-700">{done}</p>}
      <button type="submit" disabled={busy || !current} className={primary}>Save notifications</button>
      <BrowserNotifications client={client} />
    </form>
  );
}

/** Web Push for this browser: subscribe through the service worker and register the pusher. */
function BrowserNotifications({ client }: { client: MatrixClient }) {
  const sub = useQuery({ queryKey: ["webpush-sub"], queryFn: currentSubscription, staleTime: 0 });
  const qc = useQueryClient();
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const on = Boolean(sub.data);
  const device = `Parley web on ${typeof navigator === "undefined" ? "a browser" : navigator.platform || "a browser"}`;

  async function toggle() {
    setBusy(true);
    setMsg(null);
    try {
      if (on) {
        await disableWebPush(client.session.baseUrl, client.session.accessToken);
        setMsg({ ok: true, text: "Browser notifications are off." });
      } else if (await enableWebPush(client.session.baseUrl, client.session.accessToken, device)) {
        setMsg({ ok: true, text: "Browser notifications are on." });
      } else {
        setMsg({ ok: false, text: "This browser cannot show notifications, or they were not allowed." });
      }
    } catch (e) {
      setMsg({ ok: false, text: `This browser could not subscribe to notifications: ${describeError(e)}` });
    } finally {
      await qc.invalidateQueries({ queryKey: ["webpush-sub"] });
      setBusy(false);
    }
  }

  return (
    <div className="flex flex-wrap items-center gap-2 pt-2 text-sm" data-testid="webpush">
      <button type="button" onClick={() => void toggle()} disabled={busy || sub.isLoading}
        className="rounded border border-slate-300 px-3 py-1.5 font-semibold dark:border-slate-600">
        {on ? "Turn off browser notifications" : "Turn on browser notifications"}
      </button>
      {msg && <span role={msg.ok ? "status" : "alert"} className={msg.ok ? "text-green-700" : "text-red-700"}>{msg.text}</span>}
    </div>
  );
}

const ROOM_CHOICES: [RoomLevel, string][] = [
  ["default", "As in my settings"],
  ["all", "All new messages"],
  ["mentions", "Mentions and keywords only"],
  ["mute", "Mute (nothing, not even mentions)"],
];

/** One channel's notification level, saved as that room's push rules. */
export function RoomNotifications({ client, roomId }: { client: MatrixClient; roomId: string }) {
  const qc = useQueryClient();
  const rules = useRuleset(client);
  const stored = rules.data ? roomLevel(rules.data, roomId) : null;
  // The choice shows at once; the server's rules confirm it (or, on an error, put it back).
  const [chosen, setChosen] = useState<RoomLevel | null>(null);
  const current = chosen ?? stored;
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function choose(level: RoomLevel) {
    setBusy(true);
    setChosen(level);
    setError(null);
    try {
      await setRoomLevel(client, roomId, level);
    } catch (e) {
      setError(describeError(e));
    } finally {
      await qc.invalidateQueries({ queryKey: ["pushrules", client.userId] });
      setChosen(null);
      setBusy(false);
    }
  }

  return (
    <fieldset className="space-y-1 text-sm" aria-busy={busy}>
      <legend className="font-semibold">Notifications for this channel</legend>
      {ROOM_CHOICES.map(([v, text]) => (
        <label key={v} className="flex items-center gap-2">
          <input type="radio" name={`room-notify-${roomId}`} value={v} disabled={!current}
            checked={current === v} onChange={() => { if (!busy) void choose(v); }} />
          {text}
        </label>
      ))}
      {error && <p role="alert" className="text-red-700">{error}</p>}
    </fieldset>
  );
}
