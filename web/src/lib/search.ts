// Searching messages: the server's full-text search (POST /_matrix/client/v3/search) in one
// channel or everywhere, and Parley's smart search by meaning (spec/ai.md). Both answer with
// events the person may read; the view shows the room, the sender and the matched words.
import type { MatrixClient } from "./api";
import { useRooms } from "./rooms";
import { loadOlder } from "./actions";
import type { MatrixEvent } from "./types";

export type SearchOrder = "rank" | "recent";

export interface SearchHit {
  event: MatrixEvent & { room_id: string };
  rank: number;
}

export interface SearchPage {
  hits: SearchHit[];
  count: number;
  highlights: string[];
  nextBatch?: string;
}

interface RoomEventsResult {
  results?: { rank?: number; result: MatrixEvent & { room_id: string } }[];
  count?: number;
  highlights?: string[];
  next_batch?: string;
}

export async function searchMessages(client: MatrixClient, term: string, opts: {
  roomId?: string; order?: SearchOrder; nextBatch?: string; signal?: AbortSignal;
} = {}): Promise<SearchPage> {
  const criteria: Record<string, unknown> = {
    search_term: term,
    keys: ["content.body"],
    order_by: opts.order ?? "rank",
    filter: { limit: 20, ...(opts.roomId ? { rooms: [opts.roomId] } : {}) },
  };
  const r = await client.request<{ search_categories?: { room_events?: RoomEventsResult } }>(
    "POST", "/_matrix/client/v3/search",
    { body: { search_categories: { room_events: criteria } }, query: { next_batch: opts.nextBatch }, signal: opts.signal });
  const re = r.search_categories?.room_events ?? {};
  return {
    hits: (re.results ?? []).map((x) => ({ event: x.result, rank: x.rank ?? 0 })),
    count: re.count ?? 0,
    highlights: re.highlights ?? [],
    nextBatch: re.next_batch,
  };
}

const WORD = /[\p{L}\p{N}_]+/gu;

/** Search by meaning (embeddings merged with full-text matches), best first. */
export async function smartSearch(client: MatrixClient, term: string, opts: { roomId?: string; signal?: AbortSignal } = {}): Promise<SearchPage> {
  const r = await client.request<{ results?: { rank: number; result: MatrixEvent & { room_id: string } }[] }>(
    "POST", "/_matrix/client/unstable/org.parley.ai/search",
    { body: { search_term: term, limit: 20, ...(opts.roomId ? { rooms: [opts.roomId] } : {}) }, signal: opts.signal });
  const hits = (r.results ?? []).map((x) => ({ event: x.result, rank: x.rank }));
  return { hits, count: hits.length, highlights: term.toLowerCase().match(WORD) ?? [] };
}

/** Split a text into pieces, marking the words that a highlight term starts (the server matches
 * words by prefix, so "deploy" marks "deployment" too). Plain strings: React renders them as text. */
export function highlightParts(text: string, highlights: string[]): { text: string; hit: boolean }[] {
  const terms = highlights.map((h) => h.toLowerCase()).filter(Boolean);
  const out: { text: string; hit: boolean }[] = [];
  let last = 0;
  for (const m of text.matchAll(WORD)) {
    const w = m[0].toLowerCase();
    if (!terms.some((t) => w.startsWith(t))) continue;
    const at = m.index ?? 0;
    if (at > last) out.push({ text: text.slice(last, at), hit: false });
    out.push({ text: m[0], hit: true });
    last = at + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), hit: false });
  return out;
}

/** Load older history of a channel until the event is in its timeline (or history ends). */
export async function ensureLoaded(client: MatrixClient, roomId: string, eventId: string, maxPages = 25): Promise<boolean> {
  for (let i = 0; i <= maxPages; i++) {
    const room = useRooms.getState().rooms[roomId];
    if (!room) return false;
    if (room.timeline.some((e) => e.event_id === eventId)) return true;
    if (!room.prevBatch || i === maxPages) return false;
    await loadOlder(client, roomId);
  }
  return false;
}

