export interface MatrixEvent {
  event_id: string;
  type: string;
  sender: string;
  origin_server_ts: number;
  content: Record<string, unknown>;
  state_key?: string;
  /** The redacted event, on m.room.redaction before room version 11 (later: content.redacts). */
  redacts?: string;
  unsigned?: { transaction_id?: string; redacted_because?: unknown; [k: string]: unknown };
  /** Local echo not yet confirmed by the server. */
  pending?: boolean;
  failed?: boolean;
  /** Decrypted locally: type and content are the cleartext of an m.room.encrypted event. */
  encrypted?: boolean;
}

export interface Member {
  displayname?: string;
  membership: string;
}

export interface RoomData {
  roomId: string;
  membership: "join" | "invite";
  name?: string;
  topic?: string;
  alias?: string;
  joinRule?: string;
  creator?: string;
  roomType?: string;
  /** For a space (an organization): its child rooms (m.space.child with a non-empty via). */
  children?: string[];
  inviter?: string;
  /** The invite says this is a direct message (is_direct on our member event). */
  directInvite?: boolean;
  /** m.room.encryption is set: messages are sealed end to end (and it can never be unset). */
  encrypted?: boolean;
  members: Record<string, Member>;
  timeline: MatrixEvent[];
  /** Token for older history (/messages dir=b); null once the room's start is reached. */
  prevBatch: string | null;
  notificationCount: number;
  highlightCount: number;
  /** Related events fetched outside the timeline (a thread's older replies). */
  related?: MatrixEvent[];
  /** Who else is typing right now (m.typing), in the server's order. */
  typing: string[];
  /** The user's fully-read marker (m.fully_read room account data): the last event they read. */
  fullyRead?: string;
  /** Replies only this user sees (a plugin's ephemeral notice, spec/plugins.md), oldest first. */
  notices?: EphemeralNotice[];
}

export interface EphemeralNotice {
  id: string;
  sender: string;
  body: string;
  /** Client clock when it arrived, to place it among the messages. */
  ts: number;
}

export interface Presence {
  presence: "online" | "unavailable" | "offline" | string;
  /** Client clock when last_active_ago was received, to age it. */
  seenAt: number;
  lastActiveAgo?: number;
}

export interface SyncRoomSection {
  state?: { events?: MatrixEvent[] };
  timeline?: { events?: MatrixEvent[]; limited?: boolean; prev_batch?: string };
  unread_notifications?: { notification_count?: number; highlight_count?: number };
  ephemeral?: { events?: { type: string; content: Record<string, unknown> }[] };
  account_data?: { events?: { type: string; content: Record<string, unknown> }[] };
  to_device?: { events?: Record<string, unknown>[] };
  device_lists?: { changed?: string[]; left?: string[] };
  device_one_time_keys_count?: Record<string, number>;
  device_unused_fallback_key_types?: string[];
  "org.matrix.msc2732.device_unused_fallback_key_types"?: string[];
}

export interface SyncResponse {
  to_device?: { events?: { type: string; sender: string; content: Record<string, unknown> }[] };
  presence?: { events?: { type: string; sender: string; content: Record<string, unknown> }[] };
  next_batch: string;
  rooms?: {
    join?: Record<string, SyncRoomSection>;
    invite?: Record<string, { invite_state?: { events?: MatrixEvent[] } }>;
    leave?: Record<string, unknown>;
  };
  account_data?: { events?: { type: string; content: Record<string, unknown> }[] };
  device_lists?: { changed?: string[]; left?: string[] };
  device_one_time_keys_count?: Record<string, number>;
  device_unused_fallback_key_types?: string[];
  "org.matrix.msc2732.device_unused_fallback_key_types"?: string[];
}
