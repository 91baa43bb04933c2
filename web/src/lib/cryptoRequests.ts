// The HTTP request that carries each kind of outgoing request an OlmMachine asks for. Pure: the
// machine's request objects are described by their fields, so this is testable without the wasm.
import { enc } from "./api";

/** Mirrors the wasm RequestType enum (KeysUpload = 0 … KeysBackup = 6). */
export const RequestKind = {
  KeysUpload: 0,
  KeysQuery: 1,
  KeysClaim: 2,
  ToDevice: 3,
  SignatureUpload: 4,
  RoomMessage: 5,
  KeysBackup: 6,
} as const;

export interface OutgoingFields {
  type: number;
  body: string;
  event_type?: string;
  txn_id?: string;
  room_id?: string;
  version?: string;
}

export interface HttpCall {
  method: "POST" | "PUT";
  path: string;
  query?: Record<string, string>;
  body: unknown;
}

const V3 = "/_matrix/client/v3";

export function httpCallFor(r: OutgoingFields): HttpCall {
  const body = JSON.parse(r.body) as unknown;
  switch (r.type) {
    case RequestKind.KeysUpload:
      return { method: "POST", path: `${V3}/keys/upload`, body };
    case RequestKind.KeysQuery:
      return { method: "POST", path: `${V3}/keys/query`, body };
    case RequestKind.KeysClaim:
      return { method: "POST", path: `${V3}/keys/claim`, body };
    case RequestKind.ToDevice:
      return { method: "PUT", path: `${V3}/sendToDevice/${enc(need(r.event_type))}/${enc(need(r.txn_id))}`, body };
    case RequestKind.SignatureUpload:
      return { method: "POST", path: `${V3}/keys/signatures/upload`, body };
    case RequestKind.RoomMessage:
      return {
        method: "PUT",
        path: `${V3}/rooms/${enc(need(r.room_id))}/send/${enc(need(r.event_type))}/${enc(need(r.txn_id))}`,
        body,
      };
    case RequestKind.KeysBackup:
      return { method: "PUT", path: `${V3}/room_keys/keys`, query: { version: need(r.version) }, body };
    default:
      throw new Error(`unknown outgoing crypto request type ${r.type}`);
  }
}

function need(v: string | undefined): string {
  if (v === undefined) throw new Error("outgoing crypto request is missing a field");
  return v;
}

/** The cleartext event a decryption yields, as the timeline holds it: the encrypted event's
 * envelope (ID, sender, time, unsigned) with the decrypted type and content. A relation sits in
 * the clear next to the ciphertext (so servers can aggregate it); it is kept when the payload
 * lacks one. */
export function clearEvent<E extends { type: string; content: Record<string, unknown> }>(
  encrypted: E, payload: { type?: unknown; content?: unknown },
): E & { encrypted: true } {
  const content = payload.content && typeof payload.content === "object"
    ? { ...(payload.content as Record<string, unknown>) } : {};
  const relation = encrypted.content?.["m.relates_to"];
  if (relation !== undefined && content["m.relates_to"] === undefined) content["m.relates_to"] = relation;
  return { ...encrypted, type: typeof payload.type === "string" ? payload.type : "m.room.message", content, encrypted: true };
}

/** The users a room key goes to: everyone joined or invited. */
export function roomRecipients(members: Record<string, { membership: string }>): string[] {
  return Object.entries(members).filter(([, m]) => m.membership === "join" || m.membership === "invite").map(([u]) => u).sort();
}
