import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MatrixApiError, type MatrixClient } from "@/lib/api";
import { SyncEngine, WS_PATH } from "@/lib/sync";
import type { SyncResponse } from "@/lib/types";

/** A WebSocket double: the test plays the server's side. */
class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static all: FakeSocket[] = [];
  readyState = FakeSocket.CONNECTING;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  constructor(public url: URL) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close() {
    this.readyState = FakeSocket.CLOSED;
  }
  // server side
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  frame(f: Record<string, unknown>) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code = 1006, reason = "") {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason });
  }
}

function fakeClient(overrides: Partial<MatrixClient> = {}) {
  return {
    session: { baseUrl: "https://hs.example", userId: "@me:hs", deviceId: "D", accessToken: "tok" },
    refresh: vi.fn(async () => {}),
    request: vi.fn(),
    ...overrides,
  } as unknown as MatrixClient & { request: ReturnType<typeof vi.fn>; refresh: ReturnType<typeof vi.fn> };
}

function handlers() {
  return { onSync: vi.fn<(s: SyncResponse) => void | Promise<void>>(), onStatus: vi.fn(), onLoggedOut: vi.fn() };
}

/** Open the socket and complete the auth handshake. */
function handshake(ws: FakeSocket) {
  ws.open();
  expect(ws.sent[0]).toEqual({ type: "auth", access_token: "tok" });
  ws.frame({ type: "authenticated", user_id: "@me:hs", device_id: "D" });
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const syncsOf = (client: { request: ReturnType<typeof vi.fn> }) =>
  client.request.mock.calls.filter((c) => c[1] === "/_matrix/client/v3/sync");

describe("SyncEngine over the WebSocket", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.stubGlobal("WebSocket", FakeSocket);
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("authenticates, starts the stream, delivers frames and acknowledges them", () => {
    const h = handlers();
    const engine = new SyncEngine(fakeClient(), h);
    engine.start();
    const ws = last();
    expect(ws.url.toString()).toBe(`wss://hs.example${WS_PATH}`);
    handshake(ws);
    expect(ws.sent[1]).toMatchObject({ type: "sync" });
    expect(ws.sent[1].since).toBeUndefined();
    ws.frame({ type: "sync", next_batch: "s5", rooms: {} });
    expect(h.onSync).toHaveBeenCalledWith({ next_batch: "s5", rooms: {} });
    expect(ws.sent[2]).toEqual({ type: "ack", next_batch: "s5" });
    expect(h.onStatus).toHaveBeenLastCalledWith("live", "websocket");
    ws.frame({ type: "ping" });
    expect(ws.sent[3]).toEqual({ type: "pong" });
    engine.stop();
  });

  it("acknowledges a frame only once the app has processed it, one frame at a time", async () => {
    const order: string[] = [];
    const gates: Record<string, () => void> = {};
    const h = handlers();
    h.onSync.mockImplementation((s: SyncResponse) => {
      order.push(`start ${s.next_batch}`);
      return new Promise<void>((resolve) => {
        gates[s.next_batch] = () => {
          order.push(`end ${s.next_batch}`);
          resolve();
        };
      });
    });
    const engine = new SyncEngine(fakeClient(), h);
    engine.start();
    const ws = last();
    handshake(ws);
    ws.frame({ type: "sync", next_batch: "s1" });
    ws.frame({ type: "sync", next_batch: "s2" });
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(["start s1"]); // s2 waits for s1
    expect(ws.sent.filter((f) => f.type === "ack")).toEqual([]);
    gates.s1();
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(["start s1", "end s1", "start s2"]);
    expect(ws.sent.filter((f) => f.type === "ack")).toEqual([{ type: "ack", next_batch: "s1" }]);
    // The socket drops while s2 is being processed: the new one resumes from s2, after it is done.
    ws.drop();
    await vi.advanceTimersByTimeAsync(600);
    handshake(last());
    await vi.advanceTimersByTimeAsync(0);
    expect(last().sent.filter((f) => f.type === "sync")).toEqual([]);
    gates.s2();
    await vi.advanceTimersByTimeAsync(0);
    expect(last().sent[1]).toMatchObject({ type: "sync", since: "s2" });
    expect(ws.sent.filter((f) => f.type === "ack")).toHaveLength(1); // never on the dead socket
    engine.stop();
  });

  it("reconnects after a drop and resumes from the last token processed", async () => {
    const h = handlers();
    const engine = new SyncEngine(fakeClient(), h);
    engine.start();
    handshake(last());
    last().frame({ type: "sync", next_batch: "s7" });
    last().drop();
    expect(h.onStatus).toHaveBeenLastCalledWith("reconnecting", "websocket");
    await vi.advanceTimersByTimeAsync(600);
    expect(FakeSocket.all).toHaveLength(2);
    handshake(last());
    expect(last().sent[1]).toMatchObject({ type: "sync", since: "s7" });
    engine.stop();
  });

  it("resumes from the token in a backpressure close (4008 resume:<token>)", async () => {
    const engine = new SyncEngine(fakeClient(), handlers());
    engine.start();
    handshake(last());
    last().frame({ type: "sync", next_batch: "s3" });
    last().frame({ type: "sync", next_batch: "s4" });
    last().drop(4008, "resume:s3");
    await vi.advanceTimersByTimeAsync(600);
    handshake(last());
    expect(last().sent[1]).toMatchObject({ type: "sync", since: "s3" });
    engine.stop();
  });

  it("refreshes an expired access token and connects again", async () => {
    const client = fakeClient();
    const engine = new SyncEngine(client, handlers());
    engine.start();
    const first = last();
    first.open();
    first.frame({ type: "error", errcode: "M_UNKNOWN_TOKEN", error: "expired" });
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    expect(client.refresh).toHaveBeenCalledOnce();
    engine.stop();
  });

  it("tells the app when the refresh is refused", async () => {
    const h = handlers();
    const client = fakeClient({ refresh: vi.fn(async () => { throw new Error("gone"); }) } as Partial<MatrixClient>);
    const engine = new SyncEngine(client, h);
    engine.start();
    last().open();
    last().frame({ type: "error", errcode: "M_UNKNOWN_TOKEN", error: "expired" });
    await vi.waitFor(() => expect(h.onLoggedOut).toHaveBeenCalledOnce());
    engine.stop();
  });

  it("falls back to long-poll /sync when the socket never opens but HTTP works", async () => {
    const h = handlers();
    const client = fakeClient();
    const syncs: Record<string, unknown>[] = [];
    client.request.mockImplementation(async (_m: string, path: string, opts: { query: Record<string, unknown>; signal: AbortSignal }) => {
      if (path === "/_matrix/client/versions") return { versions: ["v1.11"] };
      syncs.push(opts.query);
      if (syncs.length === 1) return { next_batch: "s1" };
      return new Promise((_, reject) => opts.signal.addEventListener("abort", () => reject(new Error("aborted"))));
    });
    const engine = new SyncEngine(client, h);
    engine.start();
    last().drop();
    await vi.advanceTimersByTimeAsync(600);
    expect(FakeSocket.all).toHaveLength(2);
    last().drop();
    await vi.advanceTimersByTimeAsync(1100);
    expect(FakeSocket.all).toHaveLength(2);
    await vi.waitFor(() => expect(syncs).toHaveLength(2));
    expect(syncs[0]).toMatchObject({ timeout: 0 });
    expect(syncs[1]).toMatchObject({ since: "s1", timeout: 30000 });
    expect(h.onStatus).toHaveBeenCalledWith("live", "long-poll");
    engine.stop();
  });

  it("keeps the WebSocket when the whole server is down, and resumes when it is back", async () => {
    const h = handlers();
    const client = fakeClient();
    let up = false;
    client.request.mockImplementation(async () => {
      if (!up) throw new TypeError("connection refused");
      return { versions: ["v1.11"] };
    });
    const engine = new SyncEngine(client, h);
    engine.start();
    handshake(last());
    last().frame({ type: "sync", next_batch: "s2" });
    last().drop();
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(10_000);
      last().drop();
    }
    expect(h.onStatus).toHaveBeenLastCalledWith("reconnecting", "websocket");
    up = true;
    await vi.advanceTimersByTimeAsync(10_000);
    const ws = last();
    handshake(ws);
    expect(ws.sent[1]).toMatchObject({ type: "sync", since: "s2" });
    expect(syncsOf(client)).toEqual([]);
    engine.stop();
  });

  it("long-poll hands an unknown token to the app as a logout", async () => {
    const h = handlers();
    const client = fakeClient();
    client.request.mockRejectedValue(new MatrixApiError(401, "M_UNKNOWN_TOKEN", "gone"));
    const engine = new SyncEngine(client, h, "long-poll");
    engine.start();
    await vi.waitFor(() => expect(h.onLoggedOut).toHaveBeenCalledOnce());
    engine.stop();
  });
});
