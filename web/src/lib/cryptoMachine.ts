// The Olm/Megolm side of the web client: one matrix-sdk-crypto OlmMachine (WebAssembly, sans-I/O)
// per login, its keys in IndexedDB. This module is loaded on demand (crypto.ts imports it
// dynamically), so the wasm stays out of the initial bundle.
//
// The machine never talks to the network itself: it hands out requests (upload our keys, query
// and claim other devices' keys, send to-device messages) and this module carries them and
// reports the responses back.
import {
  DecryptionSettings,
  DeviceId,
  DeviceLists,
  EncryptionSettings,
  initAsync,
  OlmMachine,
  RoomId,
  TrustRequirement,
  UserId,
  type RoomKeyInfo,
} from "@matrix-org/matrix-sdk-crypto-wasm";
import type { MatrixClient } from "./api";
import { httpCallFor, type OutgoingFields } from "./cryptoRequests";
import type { MatrixEvent, SyncResponse } from "./types";

export interface Decrypted {
  type: string;
  content: Record<string, unknown>;
}

export class CryptoMachine {
  private outgoing: Promise<void> | null = null;
  private again = false;
  private roomLocks = new Map<string, Promise<unknown>>();

  private constructor(private client: MatrixClient, private machine: OlmMachine) {}

  /** Open (or create) this device's machine in the IndexedDB store `storeName`. */
  static async open(client: MatrixClient, storeName: string, passphrase: string): Promise<CryptoMachine> {
    await initAsync();
    const { userId, deviceId } = client.session;
    const machine = await OlmMachine.initialize(new UserId(userId), new DeviceId(deviceId), storeName, passphrase);
    const m = new CryptoMachine(client, machine);
    m.kick(); // publish our device keys and one-time keys
    return m;
  }

  onRoomKeys(cb: (keys: { roomId: string; sessionId: string }[]) => void): void {
    this.machine.registerRoomKeyUpdatedCallback(async (infos: RoomKeyInfo[]) => {
      cb(infos.map((i) => ({ roomId: i.roomId.toString(), sessionId: i.sessionId })));
    });
  }

  /** Feed one sync response's crypto parts; resolves once the machine has stored them. */
  async receiveSync(sync: SyncResponse): Promise<void> {
    const changed = (sync.device_lists?.changed ?? []).map((u) => new UserId(u));
    const left = (sync.device_lists?.left ?? []).map((u) => new UserId(u));
    const counts = new Map(Object.entries(sync.device_one_time_keys_count ?? {}));
    // Absent means the server did not say (older servers): the machine must not assume "none".
    const fallback = sync.device_unused_fallback_key_types ?? sync["org.matrix.msc2732.device_unused_fallback_key_types"];
    await this.machine.receiveSyncChanges(JSON.stringify(sync.to_device?.events ?? []), new DeviceLists(changed, left),
      counts, fallback ? new Set(fallback) : undefined);
    this.kick();
  }

  /** Process outgoing requests in the background; a failure waits for the next sync. */
  private kick(): void {
    this.processOutgoing().catch((e) => {
      if (!this.closed) console.warn("crypto requests failed; retried on the next sync", e);
    });
  }

  /** Send everything the machine wants sent; concurrent callers share one pass (and one more
   * pass runs when asked during a pass, since the machine may have new requests by then). */
  processOutgoing(): Promise<void> {
    if (this.outgoing) {
      this.again = true;
      return this.outgoing;
    }
    const run = async () => {
      do {
        if (this.closed) return;
        this.again = false;
        const requests = await this.machine.outgoingRequests();
        for (const r of requests) {
          if (this.closed) return;
          try {
            await this.send(r as unknown as OutgoingFields & { id: string });
          } catch (e) {
            console.warn("crypto request failed; it is retried on the next sync", e);
          }
        }
      } while (this.again);
    };
    this.outgoing = run().finally(() => {
      this.outgoing = null;
    });
    return this.outgoing;
  }

  private async send(r: OutgoingFields & { id: string }): Promise<void> {
    const call = httpCallFor(r);
    const response = await this.client.request(call.method, call.path, { body: call.body, query: call.query });
    await this.machine.markRequestAsSent(r.id, r.type, JSON.stringify(response));
  }

  /** Encrypt an event for a room: make sure every recipient's device has an Olm session and the
   * current room key (one pass per room at a time), then seal the content with Megolm. */
  async encrypt(roomId: string, recipients: string[], type: string, content: Record<string, unknown>): Promise<Record<string, unknown>> {
    const prev = this.roomLocks.get(roomId) ?? Promise.resolve();
    const job = prev.catch(() => undefined).then(async () => {
      const room = new RoomId(roomId);
      const users = recipients.map((u) => new UserId(u));
      await this.machine.updateTrackedUsers(users);
      await this.processOutgoing(); // the keys/query for newly tracked users
      const claim = await this.machine.getMissingSessions(recipients.map((u) => new UserId(u)));
      if (claim) await this.send(claim as unknown as OutgoingFields & { id: string });
      const shares = await this.machine.shareRoomKey(room, recipients.map((u) => new UserId(u)), new EncryptionSettings());
      for (const share of shares) await this.send(share as unknown as OutgoingFields & { id: string });
      return JSON.parse(await this.machine.encryptRoomEvent(room, type, JSON.stringify(content))) as Record<string, unknown>;
    });
    this.roomLocks.set(roomId, job);
    try {
      return await job;
    } finally {
      if (this.roomLocks.get(roomId) === job) this.roomLocks.delete(roomId);
    }
  }

  /** The decrypted type and content of an m.room.encrypted event; throws when it cannot be. */
  async decrypt(roomId: string, ev: MatrixEvent): Promise<Decrypted> {
    const raw = { ...ev, room_id: roomId };
    delete raw.pending;
    delete raw.failed;
    const out = await this.machine.decryptRoomEvent(JSON.stringify(raw), new RoomId(roomId),
      new DecryptionSettings(TrustRequirement.Untrusted));
    const clear = JSON.parse(out.event) as { type?: unknown; content?: unknown };
    return {
      type: typeof clear.type === "string" ? clear.type : "m.room.message",
      content: clear.content && typeof clear.content === "object" ? clear.content as Record<string, unknown> : {},
    };
  }

  private closed = false;

  /** Release the machine (and its IndexedDB connections); later calls do nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.machine.close();
  }
}
