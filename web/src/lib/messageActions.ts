// What a person does to messages already sent: edit, delete, react, reply in a thread, and say
// they are typing. Plain Matrix events (m.replace, redactions, m.annotation, m.thread, m.typing),
// so every Matrix client shows the same.
import { enc, newTxnId, type MatrixClient } from "./api";
import { sendEvent, textContent } from "./actions";
import { useRooms } from "./rooms";
import type { MatrixEvent } from "./types";

export async function editMessage(client: MatrixClient, roomId: string, eventId: string, text: string): Promise<void> {
  const newContent = textContent(text);
  const content: Record<string, unknown> = {
    ...newContent,
    body: `* ${text}`,
    "m.new_content": newContent,
    "m.relates_to": { rel_type: "m.replace", event_id: eventId },
  };
  if (typeof newContent.formatted_body === "string") content.formatted_body = `* ${newContent.formatted_body}`;
  await sendEvent(client, roomId, "m.room.message", content);
}

export async function redactEvent(client: MatrixClient, roomId: string, eventId: string, reason?: string): Promise<void> {
  await client.request("PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(newTxnId())}`, {
    body: reason ? { reason } : {},
  });
}

export async function react(client: MatrixClient, roomId: string, eventId: string, key: string): Promise<void> {
  await sendEvent(client, roomId, "m.reaction", {
    "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key },
  });
}

/** Send a reply in the thread under `rootId`; `lastId` is the thread's newest event, for clients
 * without threads, which show it as a plain reply to that event. */
export async function sendThreadReply(client: MatrixClient, roomId: string, rootId: string, lastId: string, text: string): Promise<void> {
  await sendEvent(client, roomId, "m.room.message", {
    ...textContent(text),
    "m.relates_to": { rel_type: "m.thread", event_id: rootId, is_falling_back: true, "m.in_reply_to": { event_id: lastId } },
  });
}

/** The thread's replies the server knows of (also the ones older than what sync delivered). */
export async function loadThread(client: MatrixClient, roomId: string, rootId: string): Promise<void> {
  const r = await client.request<{ chunk?: MatrixEvent[] }>(
    "GET", `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(rootId)}/m.thread`,
    { query: { limit: 100, dir: "b" } });
  useRooms.getState().addRelated(roomId, r.chunk ?? []);
}

export async function setTyping(client: MatrixClient, roomId: string, typing: boolean): Promise<void> {
  await client.request("PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(client.userId)}`, {
    body: typing ? { typing: true, timeout: 20_000 } : { typing: false },
  });
}

/** Wording of the typing line under the timeline, or null when nobody types. */
export function typingLine(names: string[]): string | null {
  if (names.length === 0) return null;
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}
