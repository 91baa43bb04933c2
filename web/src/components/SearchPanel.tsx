"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";
import { describeError, type MatrixClient } from "@/lib/api";
import { getAiSettings } from "@/lib/ai";
import { openRoom } from "@/lib/navigation";
import { memberName, roomName, useRooms } from "@/lib/rooms";
import { highlightParts, searchMessages, smartSearch, type SearchHit, type SearchOrder } from "@/lib/search";
import { useUi } from "@/lib/ui";

function Highlighted({ text, highlights }: { text: string; highlights: string[] }) {
  return (
    <>
      {highlightParts(text, highlights).map((p, i) => p.hit
        ? <mark key={i} data-testid="search-highlight" className="rounded bg-amber-200 px-0.5 text-inherit dark:bg-amber-700">{p.text}</mark>
        : <span key={i}>{p.text}</span>)}
    </>
  );
}

function Result({ client, hit, highlights }: { client: MatrixClient; hit: SearchHit; highlights: string[] }) {
  const ev = hit.event;
  const room = useRooms((s) => s.rooms[ev.room_id]);
  const direct = useRooms((s) => s.direct[ev.room_id]);
  const where = room ? `${direct ? "" : "#"}${roomName(room, client.userId, direct)}` : ev.room_id;
  const body = typeof ev.content?.body === "string" ? ev.content.body : "";
  const when = new Date(ev.origin_server_ts).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  return (
    <li>
      <button type="button" data-testid="search-result" data-event-id={ev.event_id} data-room-id={ev.room_id}
        onClick={() => {
          useUi.getState().setJump({ roomId: ev.room_id, eventId: ev.event_id });
          openRoom(ev.room_id);
          // On a phone the channel and the search take turns on the screen: show the channel.
          if (window.matchMedia("(max-width: 767px)").matches) useUi.getState().setSearch(null);
        }}
        className="block w-full rounded px-3 py-2 text-left hover:bg-slate-100 focus:bg-slate-100 focus:outline-none dark:hover:bg-slate-700 dark:focus:bg-slate-700">
        <span className="flex gap-2 text-xs text-slate-600 dark:text-slate-300">
          <span className="font-semibold" data-testid="search-result-room">{where}</span>
          <span data-testid="search-result-sender">{memberName(room, ev.sender)}</span>
          <span className="ml-auto shrink-0">{when}</span>
        </span>
        <span className="mt-0.5 line-clamp-3 block whitespace-pre-wrap break-words text-sm" data-testid="search-result-body">
          <Highlighted text={body} highlights={highlights} />
        </span>
      </button>
    </li>
  );
}

/** Search results beside the channel: in one channel or all of them, by relevance or newest
 * first, or by meaning (smart search) when the server offers it. Picking a result opens its
 * channel at that message. */
export function SearchPanel({ client }: { client: MatrixClient }) {
  const search = useUi((s) => s.search);
  const setSearch = useUi((s) => s.setSearch);
  const selected = useRooms((s) => s.selected);
  const ai = useQuery({ queryKey: ["ai-server", client.userId, "settings"], queryFn: () => getAiSettings(client), retry: false });
  const [term, setTerm] = useState(search?.term ?? "");
  const [order, setOrder] = useState<SearchOrder>("rank");
  const [smart, setSmart] = useState(false);
  const [hits, setHits] = useState<SearchHit[]>([]);
  const [highlights, setHighlights] = useState<string[]>([]);
  const [count, setCount] = useState<number | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const roomId = search?.roomId ?? null;
  const query = search?.term ?? "";

  useEffect(() => { setTerm(query); }, [query]);
  useEffect(() => { input.current?.focus(); }, []);

  useEffect(() => {
    if (!query.trim()) return;
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setBusy(true);
    setError(null);
    const run = smart
      ? smartSearch(client, query, { roomId: roomId ?? undefined, signal: ctl.signal })
      : searchMessages(client, query, { roomId: roomId ?? undefined, order, signal: ctl.signal });
    run.then((page) => {
      if (ctl.signal.aborted) return;
      setHits(page.hits);
      setHighlights(page.highlights);
      setCount(page.count);
      setNext(page.nextBatch);
    }, (e) => { if (!ctl.signal.aborted) setError(describeError(e)); })
      .finally(() => { if (!ctl.signal.aborted) setBusy(false); });
    return () => ctl.abort();
  }, [client, query, roomId, order, smart]);

  async function more() {
    if (!next) return;
    setBusy(true);
    try {
      const page = await searchMessages(client, query, { roomId: roomId ?? undefined, order, nextBatch: next });
      setHits((h) => [...h, ...page.hits.filter((x) => !h.some((y) => y.event.event_id === x.event.event_id))]);
      setHighlights((h) => [...new Set([...h, ...page.highlights])]);
      setNext(page.nextBatch);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    setSearch({ term: term.trim(), roomId });
  }

  if (!search) return null;
  const scopeRoom = roomId ? useRooms.getState().rooms[roomId] : undefined;
  return (
    <aside aria-label="Search" data-testid="search-panel"
      onKeyDown={(e) => { if (e.key === "Escape" && !e.defaultPrevented) setSearch(null); }}
      className="flex w-full min-w-0 flex-col border-l border-slate-200 md:w-96 dark:border-slate-700">
      <header className="flex items-center justify-between border-b border-slate-200 px-4 py-3 dark:border-slate-700">
        <h2 className="font-bold">Search</h2>
        <button type="button" aria-label="Close search" onClick={() => setSearch(null)} className="rounded px-2 text-slate-500 hover:bg-slate-100 dark:hover:bg-slate-700">✕</button>
      </header>
      <form onSubmit={submit} className="space-y-2 border-b border-slate-200 px-4 py-3 text-sm dark:border-slate-700" role="search">
        <input ref={input} aria-label="Search for" value={term} onChange={(e) => setTerm(e.target.value)}
          className="w-full rounded-md border border-slate-300 bg-transparent px-3 py-1.5 focus:border-indigo-500 focus:outline-none dark:border-slate-600" />
        <div className="flex flex-wrap items-center gap-3">
          <label className="inline-flex items-center gap-1">
            <input type="radio" name="search-scope" checked={roomId !== null} disabled={!selected}
              onChange={() => setSearch({ term: query, roomId: selected })} />
            {scopeRoom ? `#${roomName(scopeRoom, client.userId)}` : "This channel"}
          </label>
          <label className="inline-flex items-center gap-1">
            <input type="radio" name="search-scope" checked={roomId === null} onChange={() => setSearch({ term: query, roomId: null })} />
            All channels
          </label>
          <label className="inline-flex items-center gap-1">Sort
            <select value={order} disabled={smart} onChange={(e) => setOrder(e.target.value as SearchOrder)}
              className="rounded border border-slate-300 bg-transparent px-1 dark:border-slate-600">
              <option value="rank">Best match</option>
              <option value="recent">Newest</option>
            </select>
          </label>
          {ai.data?.server.enabled && (
            <label className="inline-flex items-center gap-1" title="Find messages by meaning, not only by their words">
              <input type="checkbox" checked={smart} onChange={(e) => setSmart(e.target.checked)} data-testid="smart-search" />
              Smart search
            </label>
          )}
        </div>
      </form>
      <div className="min-h-0 flex-1 overflow-y-auto py-2" aria-live="polite" aria-busy={busy}>
        {error && <p role="alert" className="px-4 text-sm text-red-700">{error}</p>}
        {count !== null && !busy && (
          <p className="px-4 pb-1 text-xs text-slate-500" data-testid="search-count">
            {hits.length === 0 ? "No messages found." : smart ? `${hits.length} by meaning` : `About ${count} ${count === 1 ? "result" : "results"}`}
          </p>
        )}
        <ul data-testid="search-results">
          {hits.map((h) => <Result key={h.event.event_id} client={client} hit={h} highlights={highlights} />)}
        </ul>
        {busy && <p className="px-4 py-2 text-xs text-slate-500">Searching…</p>}
        {next && !busy && !smart && (
          <button type="button" onClick={() => void more()} className="mx-4 my-2 text-sm text-indigo-700 underline dark:text-indigo-300">More results</button>
        )}
      </div>
    </aside>
  );
}
