// Real time: Parley's WebSocket sync (spec/websocket-sync.md), falling back to long-poll /sync
// when the socket cannot be had. Both resume from the last token processed, so a reconnect
// neither loses nor repeats events. A frame is acknowledged (and its token becomes the resume
// point) only once the app has processed it, which may take a while for the crypto machine to
// store its to-device messages: frames are processed one at a time, in order.
import { MatrixApiError, type MatrixClient } from "./api";
import type { SyncResponse } from "./types";
import type { SyncStatus } from "./rooms";

export const WS_PATH = "/_matrix/client/unstable/org.parley.ws";
const FILTER = { room: { timeline: { limit: 30 } } };
const POLL_TIMEOUT_MS = 30_000;

export interface SyncHandlers {
  /** Apply a sync; a returned promise holds back the acknowledgement until it settles. */
  onSync: (sync: SyncResponse) => void | Promise<void>;
  onStatus: (status: SyncStatus, transport?: "websocket" | "long-poll") => void;
  onLoggedOut: () => void;
}

type Transport = "websocket" | "long-poll";

export class SyncEngine {
  private since: string | null = null;
  private stopped = false;
  private socket: WebSocket | null = null;
  private wsFailures = 0;
  private transport: Transport;
  private poll: AbortController | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private backoffMs = 500;
  /** Processing of earlier frames still under way; null when none is. */
  private pending: Promise<void> | null = null;

  constructor(private client: MatrixClient, private handlers: SyncHandlers, prefer: Transport = "websocket") {
    this.transport = typeof WebSocket === "undefined" ? "long-poll" : prefer;
  }

  start(): void {
    this.stopped = false;
    this.handlers.onStatus("connecting", this.transport);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.poll?.abort();
    const s = this.socket;
    this.socket = null;
    if (s && s.readyState <= WebSocket.OPEN) s.close(1000, "bye");
  }

  private connect(): void {
    if (this.stopped) return;
    if (this.transport === "websocket") this.openSocket();
    else void this.pollLoop();
  }

  private retry(): void {
    if (this.stopped) return;
    this.handlers.onStatus("reconnecting", this.transport);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 8_000);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Run `step` after every earlier step has finished: at once when nothing is pending, so a
   * handler that returns nothing keeps frames synchronous. */
  private serial(step: () => void | Promise<void>): void {
    const settle = (p: Promise<void>) => {
      const mine: Promise<void> = p.catch((e) => console.error("sync processing failed", e)).then(() => {
        if (this.pending === mine) this.pending = null;
      });
      this.pending = mine;
    };
    if (this.pending) {
      settle(this.pending.then(step));
      return;
    }
    const r = step();
    if (r) settle(r);
  }

  /** Hand a sync to the app; `done` runs once the app has processed it. */
  private deliver(sync: SyncResponse, done?: () => void): void {
    this.serial(() => {
      const finish = () => {
        this.since = sync.next_batch;
        this.backoffMs = 500;
        done?.();
      };
      const r = this.handlers.onSync(sync);
      if (r) return r.catch((e) => console.error("sync processing failed", e)).then(finish);
      finish();
    });
  }

  private openSocket(): void {
    const url = new URL(WS_PATH, this.client.session.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let authenticated = false;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.socketFailed(false);
      return;
    }
    this.socket = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", access_token: this.client.session.accessToken }));
    };
    ws.onmessage = (msg) => {
      if (typeof msg.data !== "string") return;
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(msg.data) as Record<string, unknown>;
      } catch {
        return;
      }
      switch (frame.type) {
        case "authenticated":
          authenticated = true;
          this.wsFailures = 0;
          // Resume from the last frame processed, once the frames of an earlier socket are.
          this.serial(() => {
            if (this.socket === ws) ws.send(JSON.stringify({ type: "sync", since: this.since ?? undefined, filter: FILTER }));
          });
          break;
        case "sync": {
          const { type: _t, ...body } = frame;
          this.deliver(body as unknown as SyncResponse, () => {
            if (this.socket !== ws) return;
            ws.send(JSON.stringify({ type: "ack", next_batch: this.since }));
            this.handlers.onStatus("live", "websocket");
          });
          break;
        }
        case "ping":
          ws.send(JSON.stringify({ type: "pong" }));
          break;
        case "error":
          if (!authenticated && frame.errcode === "M_UNKNOWN_TOKEN") {
            // The access token expired: refresh it, then reconnect on the close that follows.
            ws.onclose = null;
            ws.close();
            this.client.refresh().then(() => this.connect(), () => this.handlers.onLoggedOut());
          }
          break;
      }
    };
    ws.onclose = (ev) => {
      if (this.socket !== ws) return;
      this.socket = null;
      if (this.stopped) return;
      if (ev.code === 4008 && ev.reason.startsWith("resume:")) {
        this.since = ev.reason.slice("resume:".length) || this.since;
      }
      this.socketFailed(authenticated);
    };
  }

  private socketFailed(wasUp: boolean): void {
    if (wasUp) {
      this.retry();
      return;
    }
    // A socket that never comes up while plain HTTP reaches the server (a proxy without WebSocket
    // support, another homeserver) is given up for long-polling, which every Matrix server speaks.
    // With the server itself down both fail, and that says nothing against the socket.
    this.client.request("GET", "/_matrix/client/versions").then(
      () => {
        this.wsFailures += 1;
        if (this.wsFailures >= 2) this.transport = "long-poll";
      },
      () => undefined,
    ).finally(() => this.retry());
  }

  private async pollLoop(): Promise<void> {
    while (!this.stopped) {
      this.poll = new AbortController();
      try {
        const sync = await this.client.request<SyncResponse>("GET", "/_matrix/client/v3/sync", {
          query: {
            since: this.since ?? undefined,
            timeout: this.since ? POLL_TIMEOUT_MS : 0,
            filter: JSON.stringify(FILTER),
          },
          signal: this.poll.signal,
        });
        if (this.stopped) return;
        await new Promise<void>((resolve) => this.deliver(sync, resolve));
        if (this.stopped) return;
        this.handlers.onStatus("live", "long-poll");
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof MatrixApiError && e.errcode === "M_UNKNOWN_TOKEN") {
          this.handlers.onLoggedOut();
          return;
        }
        this.retry();
        return;
      }
    }
  }
}
