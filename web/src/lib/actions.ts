// What the person does, as Matrix requests; the store is updated optimistically where that helps.
import { enc, MatrixApiError, newTxnId, type MatrixClient } from "./api";
import { currentCrypto } from "./crypto";
import { roomRecipients } from "./cryptoRequests";
import { markdownToHtml } from "./markdown";
import { useRooms } from "./rooms";
import type { MatrixEvent } from "./types";

/** The content of a text message: the body, plus HTML when the Markdown formats something. */
export function textContent(text: string): Record<string, unknown> {
  const content: Record<string, unknown> = { msgtype: "m.text", body: text };
  const html = markdownToHtml(text);
  if (html) {
    content.format = "org.matrix.custom.html";
    content.formatted_body = html;
  }
  return content;
}

/** Direct messages are created end-to-end encrypted; this is the one switch. */
export const ENCRYPT_DIRECT_MESSAGES = true;
const MEGOLM = "m.megolm.v1.aes-sha2";

/** Send an event with a local echo that the server's answer (or sync) confirms. In an encrypted
 * room the server only ever sees the Megolm ciphertext (never the plaintext: if this browser
 * cannot encrypt, nothing is sent). */
export async function sendEvent(client: MatrixClient, roomId: string, type: string, content: Record<string, unknown>): Promise<string> {
  const txnId = newTxnId();
  useRooms.getState().addEcho(roomId, {
    event_id: `~${txnId}`, type, sender: client.userId, origin_server_ts: Date.now(), content, pending: true,
  });
  try {
    const room = useRooms.getState().rooms[roomId];
    let wireType = type;
    let wireContent = content;
    const crypto = currentCrypto();
    if (room?.encrypted) {
      if (!crypto) throw new Error("Encryption is not running, so nothing was sent to this encrypted conversation.");
      wireContent = await crypto.encrypt(room, roomRecipients(room.members), type, content);
      wireType = "m.room.encrypted";
    }
    const r = await client.request<{ event_id: string }>(
      "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(wireType)}/${enc(txnId)}`, { body: wireContent });
    if (wireType !== type) crypto?.rememberSent(r.event_id, type, content);
    useRooms.getState().confirmEcho(roomId, txnId, r.event_id);
    return r.event_id;
  } catch (e) {
    useRooms.getState().failEcho(roomId, txnId);
    throw e;
  }
}

export async function sendText(client: MatrixClient, roomId: string, text: string): Promise<void> {
  await sendEvent(client, roomId, "m.room.message", textContent(text));
}

export interface NewChannel {
  name: string;
  topic: string;
  isPublic: boolean;
}

export async function createChannel(client: MatrixClient, c: NewChannel): Promise<string> {
  const body: Record<string, unknown> = {
    name: c.name,
    preset: c.isPublic ? "public_chat" : "private_chat",
    visibility: c.isPublic ? "public" : "private",
  };
  if (c.topic.trim()) body.topic = c.topic.trim();
  const r = await client.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", { body });
  return r.room_id;
}

/** Create an organization: a Matrix space (m.space), invite-only, that channels are added to. */
export async function createOrganization(client: MatrixClient, name: string): Promise<string> {
  const r = await client.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", {
    body: { name, preset: "private_chat", creation_content: { type: "m.space" },
      power_level_content_override: { events_default: 100 } },
  });
  return r.room_id;
}

/** Put a channel into an organization: m.space.child in the space, m.space.parent in the channel. */
export async function addToOrganization(client: MatrixClient, spaceId: string, roomId: string): Promise<void> {
  const via = [client.userId.split(":").slice(1).join(":")];
  await client.request("PUT", `/_matrix/client/v3/rooms/${enc(spaceId)}/state/m.space.child/${enc(roomId)}`, { body: { via } });
  await client.request("PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.space.parent/${enc(spaceId)}`, {
    body: { via, canonical: true },
  }).catch(() => undefined); // the channel's own link is a courtesy; the space's child event is what counts
}

export async function joinRoom(client: MatrixClient, roomIdOrAlias: string): Promise<string> {
  const r = await client.request<{ room_id: string }>("POST", `/_matrix/client/v3/join/${enc(roomIdOrAlias)}`, { body: {} });
  return r.room_id;
}

export async function leaveRoom(client: MatrixClient, roomId: string): Promise<void> {
  await client.request("POST", `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { body: {} });
}

/** Load one page of older history; false when the room's start has been reached. */
export async function loadOlder(client: MatrixClient, roomId: string): Promise<boolean> {
  const room = useRooms.getState().rooms[roomId];
  if (!room?.prevBatch) return false;
  const r = await client.request<{ chunk?: MatrixEvent[]; end?: string }>(
    "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/messages`,
    { query: { dir: "b", from: room.prevBatch, limit: 40 } });
  const chunk = r.chunk ?? [];
  const end = chunk.length > 0 && r.end ? r.end : null;
  useRooms.getState().prependHistory(roomId, chunk, end);
  return end !== null;
}

export async function sendReadReceipt(client: MatrixClient, roomId: string, eventId: string): Promise<void> {
  await client.request("POST", `/_matrix/client/v3/rooms/${enc(roomId)}/read_markers`, {
    body: { "m.fully_read": eventId, "m.read": eventId },
  });
}

export async function logout(client: MatrixClient): Promise<void> {
  try {
    await client.request("POST", "/_matrix/client/v3/logout", { body: {} });
  } catch {
    // The token may already be gone; forgetting it locally is what matters.
  }
}

export interface PublicRoom {
  room_id: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  num_joined_members: number;
}

export async function publicRooms(client: MatrixClient, term: string): Promise<PublicRoom[]> {
  const body: Record<string, unknown> = { limit: 50 };
  if (term.trim()) body.filter = { generic_search_term: term.trim() };
  const r = await client.request<{ chunk?: PublicRoom[] }>("POST", "/_matrix/client/v3/publicRooms", { body });
  return r.chunk ?? [];
}

const USER_ID = /^@[^:\s]+:[^\s]+$/;

/** Invite a user to a room; the full user ID that was invited. */
export async function inviteUser(client: MatrixClient, roomId: string, userId: string): Promise<string> {
  const target = userId.trim();
  if (!USER_ID.test(target)) throw new Error("Enter a full user ID, like @alice:example.org.");
  if (target === client.userId) throw new Error("You are already here.");
  await client.request("POST", `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { body: { user_id: target } });
  return target;
}

/** Record a room as a direct message with `userId` in the m.direct account data. */
export async function markDirect(client: MatrixClient, roomId: string, userId: string): Promise<void> {
  const byUser: Record<string, string[]> = {};
  for (const [rid, uid] of Object.entries(useRooms.getState().direct)) (byUser[uid] ??= []).push(rid);
  byUser[userId] = [...new Set([...(byUser[userId] ?? []), roomId])];
  await client.request("PUT", `/_matrix/client/v3/user/${enc(client.userId)}/account_data/m.direct`, { body: byUser });
}

/** Open a direct message with someone: an existing one if there is one, else a new invite-only room. */
export async function startDirect(client: MatrixClient, userId: string): Promise<string> {
  const target = userId.trim();
  if (!USER_ID.test(target)) throw new Error("Enter a full user ID, like @alice:example.org.");
  if (target === client.userId) throw new Error("That is you.");
  const { rooms, direct } = useRooms.getState();
  const existing = Object.entries(direct).find(([rid, uid]) => uid === target && rooms[rid]?.membership === "join");
  if (existing) return existing[0];
  try {
    await client.request("GET", `/_matrix/client/v3/profile/${enc(target)}`);
  } catch (e) {
    if (e instanceof MatrixApiError && e.status === 404) throw new Error(`There is no user ${target}.`);
    throw e;
  }
  const body: Record<string, unknown> = { is_direct: true, invite: [target], preset: "trusted_private_chat" };
  if (ENCRYPT_DIRECT_MESSAGES) {
    body.initial_state = [{ type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } }];
  }
  const r = await client.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", { body });
  await markDirect(client, r.room_id, target);
  return r.room_id;
}

/** Join an invite; an invite marked is_direct becomes a direct message with the inviter. */
export async function acceptInvite(client: MatrixClient, roomId: string): Promise<void> {
  const room = useRooms.getState().rooms[roomId];
  await joinRoom(client, roomId);
  if (room?.directInvite && room.inviter) await markDirect(client, roomId, room.inviter);
}
