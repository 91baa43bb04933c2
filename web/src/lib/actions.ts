// What the person does, as Matrix requests; the store is updated optimistically where that helps.
import { enc, newTxnId, type MatrixClient } from "./api";
import { markdownToHtml } from "./markdown";
import { useRooms } from "./rooms";
import type { MatrixEvent } from "./types";

export async function sendText(client: MatrixClient, roomId: string, text: string): Promise<void> {
  const txnId = newTxnId();
  const content: Record<string, unknown> = { msgtype: "m.text", body: text };
  const html = markdownToHtml(text);
  if (html) {
    content.format = "org.matrix.custom.html";
    content.formatted_body = html;
  }
  const rooms = useRooms.getState();
  rooms.addEcho(roomId, {
    event_id: `~${txnId}`, type: "m.room.message", sender: client.userId,
    origin_server_ts: Date.now(), content, pending: true,
  });
  try {
    const r = await client.request<{ event_id: string }>(
      "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`, { body: content });
    useRooms.getState().confirmEcho(roomId, txnId, r.event_id);
  } catch (e) {
    useRooms.getState().failEcho(roomId, txnId);
    throw e;
  }
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
