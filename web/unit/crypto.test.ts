import { describe, expect, it } from "vitest";
import { clearEvent, httpCallFor, RequestKind, roomRecipients } from "@/lib/cryptoRequests";
import { useRooms } from "@/lib/rooms";
import type { MatrixEvent, SyncResponse } from "@/lib/types";

describe("the HTTP call for each OlmMachine request", () => {
  const body = JSON.stringify({ a: 1 });

  it("posts key uploads, queries, claims and signatures", () => {
    expect(httpCallFor({ type: RequestKind.KeysUpload, body })).toEqual({ method: "POST", path: "/_matrix/client/v3/keys/upload", body: { a: 1 } });
    expect(httpCallFor({ type: RequestKind.KeysQuery, body }).path).toBe("/_matrix/client/v3/keys/query");
    expect(httpCallFor({ type: RequestKind.KeysClaim, body }).path).toBe("/_matrix/client/v3/keys/claim");
    expect(httpCallFor({ type: RequestKind.SignatureUpload, body }).path).toBe("/_matrix/client/v3/keys/signatures/upload");
  });

  it("puts to-device messages and room messages under their transaction IDs, escaped", () => {
    expect(httpCallFor({ type: RequestKind.ToDevice, body, event_type: "m.room.encrypted", txn_id: "t/1" })).toEqual({
      method: "PUT", path: "/_matrix/client/v3/sendToDevice/m.room.encrypted/t%2F1", body: { a: 1 },
    });
    expect(httpCallFor({ type: RequestKind.RoomMessage, body, room_id: "!r:hs", event_type: "m.key.verification.ready", txn_id: "x" }).path)
      .toBe("/_matrix/client/v3/rooms/!r%3Ahs/send/m.key.verification.ready/x");
  });

  it("puts backed-up keys with their backup version", () => {
    expect(httpCallFor({ type: RequestKind.KeysBackup, body, version: "3" })).toEqual({
      method: "PUT", path: "/_matrix/client/v3/room_keys/keys", query: { version: "3" }, body: { a: 1 },
    });
  });

  it("refuses a request it does not know, or one missing its fields", () => {
    expect(() => httpCallFor({ type: 99, body })).toThrow(/unknown/);
    expect(() => httpCallFor({ type: RequestKind.ToDevice, body })).toThrow(/missing/);
  });
});

describe("decrypted events", () => {
  const sealed: MatrixEvent = {
    event_id: "$e", type: "m.room.encrypted", sender: "@a:hs", origin_server_ts: 5,
    content: { algorithm: "m.megolm.v1.aes-sha2", ciphertext: "xyz", session_id: "S",
      "m.relates_to": { rel_type: "m.thread", event_id: "$root" } },
    unsigned: { transaction_id: "t1" },
  };

  it("keep the envelope and take the cleartext type and content", () => {
    const clear = clearEvent(sealed, { type: "m.room.message", content: { msgtype: "m.text", body: "hi" } });
    expect(clear).toMatchObject({ event_id: "$e", sender: "@a:hs", origin_server_ts: 5, unsigned: { transaction_id: "t1" },
      type: "m.room.message", encrypted: true });
    expect(clear.content.body).toBe("hi");
  });

  it("keep the relation that travels in the clear, unless the payload has its own", () => {
    expect(clearEvent(sealed, { type: "m.room.message", content: { body: "x" } }).content["m.relates_to"])
      .toEqual({ rel_type: "m.thread", event_id: "$root" });
    const own = { rel_type: "m.replace", event_id: "$other" };
    expect(clearEvent(sealed, { type: "m.room.message", content: { body: "x", "m.relates_to": own } }).content["m.relates_to"]).toEqual(own);
  });

  it("replace the sealed events in the store, and only those", () => {
    useRooms.getState().reset();
    const plain: MatrixEvent = { event_id: "$p", type: "m.room.message", sender: "@a:hs", origin_server_ts: 1, content: { body: "p" } };
    const sync: SyncResponse = {
      next_batch: "s1",
      rooms: { join: { "!r:hs": {
        state: { events: [{ event_id: "$enc", type: "m.room.encryption", state_key: "", sender: "@a:hs", origin_server_ts: 0,
          content: { algorithm: "m.megolm.v1.aes-sha2" } }] },
        timeline: { events: [plain, sealed] },
      } } },
    };
    useRooms.getState().applySync(sync, "@me:hs");
    expect(useRooms.getState().rooms["!r:hs"].encrypted).toBe(true);
    const clear = clearEvent(sealed, { type: "m.room.message", content: { body: "hi" } });
    useRooms.getState().replaceDecrypted("!r:hs", { $e: clear, $p: { ...plain, content: { body: "forged" } } });
    const tl = useRooms.getState().rooms["!r:hs"].timeline;
    expect(tl.map((e) => [e.event_id, e.type, e.content.body])).toEqual([["$p", "m.room.message", "p"], ["$e", "m.room.message", "hi"]]);
  });
});

describe("room key recipients", () => {
  it("are the joined and invited members, not those who left or were banned", () => {
    expect(roomRecipients({
      "@b:hs": { membership: "invite" }, "@a:hs": { membership: "join" }, "@c:hs": { membership: "leave" }, "@d:hs": { membership: "ban" },
    })).toEqual(["@a:hs", "@b:hs"]);
  });
});

describe("encrypted attachments", () => {
  it("round-trip, with a fresh key, a zero block counter and the ciphertext's hash", async () => {
    const { encryptAttachment, decryptAttachment } = await import("@/lib/cryptoAttachments");
    const plain = new TextEncoder().encode("meeting notes: ship on thursday".repeat(50));
    const { ciphertext, file } = await encryptAttachment(plain.buffer);
    expect(ciphertext.byteLength).toBe(plain.byteLength);
    expect(Buffer.from(ciphertext).includes(Buffer.from("meeting notes"))).toBe(false);
    expect(file).toMatchObject({ v: "v2", key: { kty: "oct", alg: "A256CTR", ext: true } });
    expect(file.key.k).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes, unpadded base64url
    const iv = Buffer.from(file.iv, "base64");
    expect(iv).toHaveLength(16);
    expect([...iv.subarray(8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    const sealed = { ...file, url: "mxc://hs/abc" };
    expect(new TextDecoder().decode(await decryptAttachment(ciphertext, sealed))).toBe(new TextDecoder().decode(plain));
    const other = await encryptAttachment(plain.buffer);
    expect(other.file.key.k).not.toBe(file.key.k);
  });

  it("refuse a ciphertext that does not match its hash", async () => {
    const { encryptAttachment, decryptAttachment } = await import("@/lib/cryptoAttachments");
    const { ciphertext, file } = await encryptAttachment(new TextEncoder().encode("x".repeat(100)).buffer);
    const tampered = new Uint8Array(ciphertext.slice(0));
    tampered[3] ^= 1;
    await expect(decryptAttachment(tampered.buffer, { ...file, url: "mxc://hs/a" })).rejects.toThrow(/hash/);
  });
});
