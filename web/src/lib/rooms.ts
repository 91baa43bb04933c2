// Client state of the rooms the user is in, fed by sync frames, history pages and local echoes.
import { create } from "zustand";
import type { MatrixEvent, Presence, RoomData, SyncResponse } from "./types";

/** A plugin's reply that only the caller sees, sent to their devices (spec/plugins.md). */
export const PLUGIN_NOTICE = "org.parley.plugin.notice";

export type SyncStatus = "connecting" | "live" | "reconnecting";

interface RoomsState {
  rooms: Record<string, RoomData>;
  /** room ID -> the other user, from m.direct account data. */
  direct: Record<string, string>;
  /** user ID -> their last known presence (m.presence). */
  presence: Record<string, Presence>;
  selected: string | null;
  status: SyncStatus;
  transport: "websocket" | "long-poll" | null;
  initialSyncDone: boolean;
  applySync: (sync: SyncResponse, me: string) => void;
  prependHistory: (roomId: string, chunkNewestFirst: MatrixEvent[], end: string | null) => void;
  addEcho: (roomId: string, ev: MatrixEvent) => void;
  addRelated: (roomId: string, events: MatrixEvent[]) => void;
  confirmEcho: (roomId: string, txnId: string, eventId: string) => void;
  failEcho: (roomId: string, txnId: string) => void;
  /** Put decrypted events in place of the m.room.encrypted events with the same IDs. */
  replaceDecrypted: (roomId: string, clear: Record<string, MatrixEvent>) => void;
  select: (roomId: string | null) => void;
  markRead: (roomId: string) => void;
  setStatus: (status: SyncStatus, transport?: "websocket" | "long-poll") => void;
  reset: () => void;
}

const empty = {
  rooms: {} as Record<string, RoomData>,
  direct: {} as Record<string, string>,
  presence: {} as Record<string, Presence>,
  selected: null as string | null,
  status: "connecting" as SyncStatus,
  transport: null as "websocket" | "long-poll" | null,
  initialSyncDone: false,
};

function newRoom(roomId: string, membership: "join" | "invite"): RoomData {
  return { roomId, membership, members: {}, timeline: [], prevBatch: null, notificationCount: 0, highlightCount: 0, typing: [] };
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Fold one state event into the room's summary fields. */
function applyState(room: RoomData, ev: MatrixEvent): void {
  const c = ev.content ?? {};
  switch (ev.type) {
    case "m.room.name":
      room.name = str(c.name) || undefined;
      break;
    case "m.room.topic":
      room.topic = str(c.topic) || undefined;
      break;
    case "m.room.canonical_alias":
      room.alias = str(c.alias) || undefined;
      break;
    case "m.room.join_rules":
      room.joinRule = str(c.join_rule);
      break;
    case "m.room.encryption":
      if (str(c.algorithm)) room.encrypted = true;
      break;
    case "m.room.create":
      room.creator = str(c.creator) ?? ev.sender;
      room.roomType = str(c.type);
      break;
    case "m.space.child":
      if (ev.state_key) {
        const rest = (room.children ?? []).filter((id) => id !== ev.state_key);
        room.children = Array.isArray(c.via) && c.via.length > 0 ? [...rest, ev.state_key] : rest;
      }
      break;
    case "m.room.member":
      if (ev.state_key !== undefined) {
        room.members[ev.state_key] = { membership: str(c.membership) ?? "leave", displayname: str(c.displayname) };
      }
      break;
  }
}

/** The event a redaction removes (top-level before room version 11, in content from 11 on). */
export function redactedId(ev: MatrixEvent): string | undefined {
  if (ev.type !== "m.room.redaction") return undefined;
  return str(ev.content?.redacts) ?? ev.redacts;
}

/** Apply a redaction to an event the room holds: its content goes, as the server's copy's did. */
function redactInPlace(room: RoomData, redaction: MatrixEvent): void {
  const target = redactedId(redaction);
  if (!target) return;
  const i = room.timeline.findIndex((e) => e.event_id === target);
  if (i < 0) return;
  const ev = room.timeline[i];
  room.timeline[i] = { ...ev, content: {}, unsigned: { ...ev.unsigned, redacted_because: redaction } };
}

function appendEvents(room: RoomData, events: MatrixEvent[]): void {
  const known = new Set(room.timeline.map((e) => e.event_id));
  for (const ev of events) {
    if (ev.type === "m.room.redaction") redactInPlace(room, ev);
    const txn = ev.unsigned?.transaction_id;
    const echo = room.timeline.findIndex(
      (e) => e.pending !== undefined && (e.event_id === ev.event_id || (txn !== undefined && e.event_id === `~${txn}`)),
    );
    if (echo >= 0) {
      room.timeline.splice(echo, 1);
      known.delete(ev.event_id);
    }
    if (known.has(ev.event_id)) continue;
    known.add(ev.event_id);
    room.timeline.push(ev);
  }
}

export const useRooms = create<RoomsState>()((set) => ({
  ...empty,

  applySync: (sync, me) =>
    set((s) => {
      const rooms = { ...s.rooms };
      let direct = s.direct;
      let presence = s.presence;
      for (const p of sync.presence?.events ?? []) {
        if (p.type !== "m.presence" || typeof p.sender !== "string") continue;
        const ago = p.content?.last_active_ago;
        presence = { ...presence, [p.sender]: {
          presence: str(p.content?.presence) ?? "offline", seenAt: Date.now(),
          lastActiveAgo: typeof ago === "number" ? ago : undefined,
        } };
      }
      for (const ad of sync.account_data?.events ?? []) {
        if (ad.type === "m.direct") {
          direct = {};
          for (const [user, ids] of Object.entries(ad.content ?? {})) {
            if (Array.isArray(ids)) for (const id of ids) if (typeof id === "string") direct[id] = user;
          }
        }
      }
      for (const [roomId, sec] of Object.entries(sync.rooms?.join ?? {})) {
        const prev = rooms[roomId];
        const room: RoomData = prev && prev.membership === "join"
          ? { ...prev, members: { ...prev.members }, timeline: [...prev.timeline] }
          : { ...newRoom(roomId, "join"), members: { ...(prev?.members ?? {}) } };
        for (const ev of sec.state?.events ?? []) applyState(room, ev);
        const tl = sec.timeline;
        if (tl) {
          if (tl.limited || !prev || prev.membership !== "join") {
            // A gap between what we hold and this batch: start the visible timeline afresh.
            room.timeline = room.timeline.filter((e) => e.pending);
            room.prevBatch = tl.prev_batch ?? null;
          }
          for (const ev of tl.events ?? []) if (ev.state_key !== undefined) applyState(room, ev);
          appendEvents(room, tl.events ?? []);
        }
        for (const e of sec.account_data?.events ?? []) {
          if (e.type === "m.fully_read" && typeof e.content?.event_id === "string") room.fullyRead = e.content.event_id;
        }
        for (const e of sec.ephemeral?.events ?? []) {
          if (e.type === "m.typing" && Array.isArray(e.content?.user_ids)) {
            room.typing = (e.content.user_ids as unknown[]).filter((u): u is string => typeof u === "string" && u !== me);
          }
        }
        if (sec.unread_notifications) {
          room.notificationCount = sec.unread_notifications.notification_count ?? 0;
          room.highlightCount = sec.unread_notifications.highlight_count ?? 0;
        }
        if (s.selected === roomId) room.notificationCount = 0;
        rooms[roomId] = room;
      }
      for (const [roomId, inv] of Object.entries(sync.rooms?.invite ?? {})) {
        const room = newRoom(roomId, "invite");
        for (const ev of inv.invite_state?.events ?? []) {
          applyState(room, ev);
          if (ev.type === "m.room.member" && ev.state_key === me) {
            room.inviter = ev.sender;
            room.directInvite = ev.content?.is_direct === true;
          }
        }
        rooms[roomId] = room;
      }
      for (const ev of sync.to_device?.events ?? []) {
        const c = ev.content ?? {};
        const roomId = str(c.room_id);
        const body = str(c.body);
        const room = roomId ? rooms[roomId] : undefined;
        if (ev.type !== PLUGIN_NOTICE || !room || room.membership !== "join" || body === undefined) continue;
        const id = `${str(c.command_id) ?? ""}:${(room.notices ?? []).length}:${body}`;
        rooms[room.roomId] = { ...room, notices: [...(room.notices ?? []), { id, sender: ev.sender, body, ts: Date.now() }] };
      }
      let selected = s.selected;
      for (const roomId of Object.keys(sync.rooms?.leave ?? {})) {
        delete rooms[roomId];
        if (selected === roomId) selected = null;
      }
      return { rooms, direct, presence, selected, initialSyncDone: true };
    }),

  prependHistory: (roomId, chunk, end) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev) return {};
      const known = new Set(prev.timeline.map((e) => e.event_id));
      const older = [...chunk].reverse().filter((e) => !known.has(e.event_id));
      return {
        rooms: { ...s.rooms, [roomId]: { ...prev, timeline: [...older, ...prev.timeline], prevBatch: end } },
      };
    }),

  addEcho: (roomId, ev) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev) return {};
      return { rooms: { ...s.rooms, [roomId]: { ...prev, timeline: [...prev.timeline, ev] } } };
    }),

  addRelated: (roomId, events) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev) return {};
      const known = new Set([...prev.timeline, ...(prev.related ?? [])].map((e) => e.event_id));
      const fresh = events.filter((e) => !known.has(e.event_id));
      if (fresh.length === 0) return {};
      return { rooms: { ...s.rooms, [roomId]: { ...prev, related: [...(prev.related ?? []), ...fresh] } } };
    }),

  confirmEcho: (roomId, txnId, eventId) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev) return {};
      // If sync already delivered the real event, drop the echo; otherwise it takes the real ID.
      const delivered = prev.timeline.some((e) => e.event_id === eventId && !e.pending);
      const timeline = delivered
        ? prev.timeline.filter((e) => e.event_id !== `~${txnId}`)
        : prev.timeline.map((e) => (e.event_id === `~${txnId}` ? { ...e, event_id: eventId, pending: false } : e));
      return { rooms: { ...s.rooms, [roomId]: { ...prev, timeline } } };
    }),

  failEcho: (roomId, txnId) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev) return {};
      const timeline = prev.timeline.map((e) => (e.event_id === `~${txnId}` ? { ...e, failed: true } : e));
      return { rooms: { ...s.rooms, [roomId]: { ...prev, timeline } } };
    }),

  replaceDecrypted: (roomId, clear) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev) return {};
      const swap = (list: MatrixEvent[]) => {
        let changed = false;
        const next = list.map((e) => {
          const c = e.type === "m.room.encrypted" ? clear[e.event_id] : undefined;
          if (!c) return e;
          changed = true;
          return c;
        });
        return changed ? next : list;
      };
      const timeline = swap(prev.timeline);
      const related = prev.related && swap(prev.related);
      if (timeline === prev.timeline && related === prev.related) return {};
      return { rooms: { ...s.rooms, [roomId]: { ...prev, timeline, related } } };
    }),

  select: (roomId) =>
    set((s) => {
      if (!roomId || !s.rooms[roomId]) return { selected: roomId };
      return { selected: roomId, rooms: { ...s.rooms, [roomId]: { ...s.rooms[roomId], notificationCount: 0, highlightCount: 0 } } };
    }),

  markRead: (roomId) =>
    set((s) => {
      const prev = s.rooms[roomId];
      if (!prev || (prev.notificationCount === 0 && prev.highlightCount === 0)) return {};
      return { rooms: { ...s.rooms, [roomId]: { ...prev, notificationCount: 0, highlightCount: 0 } } };
    }),

  setStatus: (status, transport) => set((s) => ({ status, transport: transport ?? s.transport })),

  reset: () => set({ ...empty }),
}));

export function memberName(room: RoomData | undefined, userId: string): string {
  const dn = room?.members[userId]?.displayname;
  return dn && dn.trim() ? dn : userId.replace(/^@/, "").split(":")[0];
}

/** What the sidebar and header call a room. */
export function roomName(room: RoomData, me: string, directWith?: string): string {
  if (room.name) return room.name;
  if (room.alias) return room.alias;
  const other = directWith ?? Object.keys(room.members).find((u) => u !== me && room.members[u].membership === "join");
  if (other) return memberName(room, other);
  return "Empty room";
}
