// End-to-end encryption for the web client, the part that is always loaded: it starts the
// OlmMachine (cryptoMachine.ts, with its WebAssembly) in the background after login, feeds it
// each sync's to-device events and key counts before the sync is acknowledged, decrypts the
// m.room.encrypted events that reach the rooms store (wherever they came from: sync, history,
// threads), retries them when their room key arrives, and seals what is sent to encrypted rooms.
//
// Keys live in IndexedDB, in a store named after the user and device and encrypted with a random
// passphrase kept next to the session in localStorage. Logging out deletes both.
import { create } from "zustand";
import type { MatrixClient } from "./api";
import type { CryptoMachine, Decrypted } from "./cryptoMachine";
import { clearEvent } from "./cryptoRequests";
import { useRooms } from "./rooms";
import type { MatrixEvent, RoomData, SyncResponse } from "./types";

export type CryptoStatus = "off" | "loading" | "ready" | "unavailable";

interface CryptoState {
  status: CryptoStatus;
  /** Event ID -> why it could not be decrypted (yet: it is retried when its key arrives). */
  failed: Record<string, string>;
}

export const useCrypto = create<CryptoState>()(() => ({ status: "off", failed: {} }));

const STORE_PREFIX = "parley-crypto:";
const PASSPHRASE_PREFIX = "parley.crypto-passphrase:";

function storeName(userId: string, deviceId: string): string {
  return `${STORE_PREFIX}${userId}:${deviceId}`;
}

function passphraseFor(name: string): string {
  const key = PASSPHRASE_PREFIX + name;
  let p = localStorage.getItem(key);
  if (!p) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    p = btoa(String.fromCharCode(...bytes));
    localStorage.setItem(key, p);
  }
  return p;
}

/** One login's crypto: created by startCrypto, ended by stop() (or forgetCrypto at logout). */
export class CryptoSession {
  readonly machine: Promise<CryptoMachine | null>;
  private syncChain: Promise<void> = Promise.resolve();
  private stopped = false;
  private unsubscribe: () => void;
  /** Decrypted type and content by event ID; a timeline rebuilt from a new sync batch is
   * patched from here. */
  private clear = new Map<string, Decrypted>();
  private seen = new WeakSet<MatrixEvent>();
  /** Events waiting for a room key, by Megolm session ID. */
  private waiting = new Map<string, Map<string, { roomId: string; ev: MatrixEvent }>>();

  constructor(client: MatrixClient) {
    useCrypto.setState({ status: "loading", failed: {} });
    const name = storeName(client.session.userId, client.session.deviceId);
    this.machine = (async () => {
      try {
        await deleteStores((n) => n !== name && !n.startsWith(`${name}::`)); // stores of earlier logins
        forgetPassphrases((k) => k !== PASSPHRASE_PREFIX + name);
        const { CryptoMachine } = await import("./cryptoMachine");
        const m = await CryptoMachine.open(client, name, passphraseFor(name));
        if (this.stopped) {
          m.close();
          return null;
        }
        m.onRoomKeys((keys) => this.retry(keys));
        useCrypto.setState({ status: "ready" });
        return m;
      } catch (e) {
        console.error("end-to-end encryption is unavailable", e);
        if (!this.stopped) useCrypto.setState({ status: "unavailable" });
        return null;
      }
    })();
    this.unsubscribe = useRooms.subscribe((s, prev) => {
      if (s.rooms !== prev.rooms) this.scan(s.rooms, prev.rooms);
    });
    this.scan(useRooms.getState().rooms, {});
  }

  /** Hand a sync response to the machine; resolves once it is stored (then the sync may be
   * acknowledged: to-device messages are deleted on the server after that). Call it before the
   * rooms store sees the same sync, so decryption of its timeline waits for its room keys. */
  receiveSync(sync: SyncResponse): Promise<void> {
    this.syncChain = this.syncChain.then(async () => {
      const m = await this.machine;
      if (!m || this.stopped) return;
      try {
        await m.receiveSync(sync);
      } catch (e) {
        console.error("crypto could not process a sync", e);
      }
    });
    return this.syncChain;
  }

  /** The m.room.encrypted content sealing `content` for the room's members. */
  async encrypt(room: RoomData, recipients: string[], type: string, content: Record<string, unknown>): Promise<Record<string, unknown>> {
    const m = await this.machine;
    if (!m) throw new Error("This browser cannot encrypt messages, so nothing was sent to this encrypted conversation.");
    return m.encrypt(room.roomId, recipients, type, content);
  }

  /** What we sent ourselves needs no round trip through the machine to be shown. */
  rememberSent(eventId: string, type: string, content: Record<string, unknown>): void {
    this.clear.set(eventId, { type, content });
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    void this.machine.then((m) => m?.close());
  }

  private scan(rooms: Record<string, RoomData>, before: Record<string, RoomData>): void {
    for (const [roomId, room] of Object.entries(rooms)) {
      const old = before[roomId];
      if (old && old.timeline === room.timeline && old.related === room.related) continue;
      const patch: Record<string, MatrixEvent> = {};
      for (const ev of [...room.timeline, ...(room.related ?? [])]) {
        if (ev.type !== "m.room.encrypted" || this.seen.has(ev)) continue;
        this.seen.add(ev);
        const known = this.clear.get(ev.event_id);
        if (known) patch[ev.event_id] = clearEvent(ev, known);
        else void this.decrypt(roomId, ev);
      }
      if (Object.keys(patch).length > 0) useRooms.getState().replaceDecrypted(roomId, patch);
    }
  }

  private async decrypt(roomId: string, ev: MatrixEvent): Promise<void> {
    await this.syncChain; // the room key may be in the sync being processed
    const m = await this.machine;
    if (!m || this.stopped) return;
    const sessionId = typeof ev.content?.session_id === "string" ? ev.content.session_id : "";
    try {
      const out = await m.decrypt(roomId, ev);
      const clear = clearEvent(ev, out);
      this.clear.set(ev.event_id, out);
      this.waiting.get(sessionId)?.delete(ev.event_id);
      if (ev.event_id in useCrypto.getState().failed) {
        useCrypto.setState((s) => {
          const failed = { ...s.failed };
          delete failed[ev.event_id];
          return { failed };
        });
      }
      useRooms.getState().replaceDecrypted(roomId, { [ev.event_id]: clear });
    } catch (e) {
      if (this.stopped) return;
      let byEvent = this.waiting.get(sessionId);
      if (!byEvent) this.waiting.set(sessionId, (byEvent = new Map()));
      byEvent.set(ev.event_id, { roomId, ev });
      const reason = e instanceof Error ? e.message : String(e);
      useCrypto.setState((s) => ({ failed: { ...s.failed, [ev.event_id]: reason } }));
    }
  }

  private retry(keys: { roomId: string; sessionId: string }[]): void {
    for (const { sessionId } of keys) {
      const byEvent = this.waiting.get(sessionId);
      if (!byEvent) continue;
      this.waiting.delete(sessionId);
      for (const { roomId, ev } of byEvent.values()) void this.decrypt(roomId, ev);
    }
  }
}

let current: CryptoSession | null = null;

/** Start this login's crypto (once per client). */
export function startCrypto(client: MatrixClient): CryptoSession {
  if (current) current.stop();
  current = new CryptoSession(client);
  return current;
}

export function stopCrypto(session: CryptoSession): void {
  session.stop();
  if (current === session) current = null;
}

export function currentCrypto(): CryptoSession | null {
  return current;
}

/** Logging out: stop the machine and delete every key store and passphrase this browser holds. */
export async function forgetCrypto(): Promise<void> {
  const s = current;
  current = null;
  useCrypto.setState({ status: "off", failed: {} });
  if (s) {
    s.stop();
    await s.machine.catch(() => null); // closed: its IndexedDB connections no longer block deletion
  }
  forgetPassphrases(() => true);
  await deleteStores(() => true);
}

function forgetPassphrases(which: (key: string) => boolean): void {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const k = localStorage.key(i);
    if (k?.startsWith(PASSPHRASE_PREFIX) && which(k)) localStorage.removeItem(k);
  }
}

async function deleteStores(which: (name: string) => boolean): Promise<void> {
  if (typeof indexedDB === "undefined" || !indexedDB.databases) return;
  const dbs = await indexedDB.databases();
  await Promise.all(dbs.filter((d) => d.name?.startsWith(STORE_PREFIX) && which(d.name)).map((d) => new Promise<void>((resolve) => {
    const req = indexedDB.deleteDatabase(d.name as string);
    req.onsuccess = req.onerror = () => resolve();
  })));
}
