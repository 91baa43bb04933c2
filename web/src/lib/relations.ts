// Relations folded into the messages they point at: edits (m.replace), reactions (m.annotation)
// and thread replies (m.thread). Pure functions over the events the client holds, so live events,
// history pages and local echoes all count the same way.
import type { MatrixEvent } from "./types";

export interface Relation {
  relType: string;
  eventId: string;
  key?: string;
}

export interface ReactionGroup {
  key: string;
  senders: string[];
  /** My reaction event with this key, if I reacted (to take it back). */
  mine?: string;
}

export interface Aggregation {
  /** Original event ID -> the newest valid edit of it. */
  edits: Map<string, MatrixEvent>;
  /** Target event ID -> reactions in order of first appearance. */
  reactions: Map<string, ReactionGroup[]>;
  /** Thread root ID -> its replies, oldest first. */
  threads: Map<string, MatrixEvent[]>;
}

export function relationOf(ev: MatrixEvent): Relation | null {
  const rel = ev.content?.["m.relates_to"];
  if (!rel || typeof rel !== "object") return null;
  const r = rel as Record<string, unknown>;
  if (typeof r.rel_type !== "string" || typeof r.event_id !== "string") return null;
  return { relType: r.rel_type, eventId: r.event_id, key: typeof r.key === "string" ? r.key : undefined };
}

/** Events that are shown on their own in the main timeline (not folded into another). */
export function isMainTimelineEvent(ev: MatrixEvent): boolean {
  if (ev.type === "m.reaction" || ev.type === "m.room.redaction") return false;
  const rel = relationOf(ev);
  return !(rel && (rel.relType === "m.replace" || rel.relType === "m.thread"));
}

/** Everything the room holds, for aggregation: fetched related events, then the timeline. */
export function roomEvents(timeline: MatrixEvent[], related: MatrixEvent[] | undefined): MatrixEvent[] {
  if (!related?.length) return timeline;
  const inTimeline = new Set(timeline.map((e) => e.event_id));
  return [...related.filter((e) => !inTimeline.has(e.event_id)), ...timeline];
}

export function aggregate(events: MatrixEvent[], me: string): Aggregation {
  const byId = new Map(events.map((e) => [e.event_id, e]));
  const edits = new Map<string, MatrixEvent>();
  const reactions = new Map<string, ReactionGroup[]>();
  const threads = new Map<string, MatrixEvent[]>();
  const seenReaction = new Set<string>();
  for (const ev of events) {
    const rel = relationOf(ev);
    if (!rel) continue;
    if (rel.relType === "m.replace" && ev.type === "m.room.message") {
      // Only the original sender may edit, and an edit of an edit is ignored (as the spec says).
      const target = byId.get(rel.eventId);
      if (!target || target.sender !== ev.sender || relationOf(target)?.relType === "m.replace") continue;
      if (typeof (ev.content["m.new_content"] as { body?: unknown } | undefined)?.body !== "string") continue;
      const prev = edits.get(rel.eventId);
      if (!prev || prev.origin_server_ts <= ev.origin_server_ts) edits.set(rel.eventId, ev);
    } else if (rel.relType === "m.annotation" && ev.type === "m.reaction" && rel.key) {
      // One reaction per person and key counts, however many times it was sent.
      const dedupe = `${rel.eventId}\u0000${rel.key}\u0000${ev.sender}`;
      if (seenReaction.has(dedupe)) continue;
      seenReaction.add(dedupe);
      const groups = reactions.get(rel.eventId) ?? [];
      let g = groups.find((x) => x.key === rel.key);
      if (!g) {
        g = { key: rel.key, senders: [] };
        groups.push(g);
      }
      g.senders.push(ev.sender);
      if (ev.sender === me && !ev.event_id.startsWith("~")) g.mine = ev.event_id;
      else if (ev.sender === me) g.mine = g.mine ?? ev.event_id;
      reactions.set(rel.eventId, groups);
    } else if (rel.relType === "m.thread" && ev.type === "m.room.message") {
      const list = threads.get(rel.eventId) ?? [];
      list.push(ev);
      threads.set(rel.eventId, list);
    }
  }
  for (const list of threads.values()) list.sort((a, b) => a.origin_server_ts - b.origin_server_ts);
  return { edits, reactions, threads };
}

/** The content to show for a message: the newest edit's m.new_content, else its own. */
export function displayContent(ev: MatrixEvent, agg: Aggregation): Record<string, unknown> {
  const edit = agg.edits.get(ev.event_id);
  if (!edit || ev.unsigned?.redacted_because) return ev.content;
  return edit.content["m.new_content"] as Record<string, unknown>;
}
