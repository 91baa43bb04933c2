// A small Matrix Client-Server API client: JSON over fetch, Matrix errors as exceptions,
// and one shared refresh of the access token when the server says it has expired.

export interface Session {
  baseUrl: string;
  userId: string;
  deviceId: string;
  accessToken: string;
  refreshToken?: string;
}

export class MatrixApiError extends Error {
  constructor(
    public status: number,
    public errcode: string,
    message: string,
    public body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Words a person can act on, for the errors they are likely to meet. */
export function describeError(e: unknown): string {
  if (e instanceof MatrixApiError) {
    switch (e.errcode) {
      case "M_FORBIDDEN":
        return e.message && e.message !== "Forbidden" ? e.message : "That is not allowed.";
      case "M_USER_IN_USE":
        return "That username is already taken.";
      case "M_INVALID_USERNAME":
        return "That username is not valid: use lowercase letters, digits and . _ = - / only.";
      case "M_WEAK_PASSWORD":
        return "That password is too weak.";
      case "M_LIMIT_EXCEEDED":
        return "Too many attempts; wait a moment and try again.";
      case "M_NOT_FOUND":
        return e.message || "Not found.";
      default:
        return e.message || `The server refused the request (${e.errcode}).`;
    }
  }
  if (e instanceof TypeError) return "Cannot reach the server. Check your connection.";
  return e instanceof Error ? e.message : String(e);
}

type Json = Record<string, unknown>;

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  signal?: AbortSignal;
  auth?: boolean;
}

export class MatrixClient {
  private refreshing: Promise<void> | null = null;

  constructor(
    public session: Session,
    /** Called with the new tokens after a refresh, or null when the session is gone. */
    private onSession: (s: Session | null) => void,
  ) {}

  get userId(): string {
    return this.session.userId;
  }

  async request<T = Json>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    try {
      return await rawRequest<T>(this.session.baseUrl, method, path, { ...opts, token: this.session.accessToken });
    } catch (e) {
      if (!(e instanceof MatrixApiError) || e.errcode !== "M_UNKNOWN_TOKEN") throw e;
      await this.refresh();
      return rawRequest<T>(this.session.baseUrl, method, path, { ...opts, token: this.session.accessToken });
    }
  }

  /** Trade the refresh token for a new pair; every caller waiting on an expired token shares one refresh. */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const rt = this.session.refreshToken;
    if (!rt) {
      this.onSession(null);
      throw new MatrixApiError(401, "M_UNKNOWN_TOKEN", "Your session has ended. Please log in again.");
    }
    try {
      const r = await rawRequest<{ access_token: string; refresh_token?: string }>(
        this.session.baseUrl, "POST", "/_matrix/client/v3/refresh", { body: { refresh_token: rt } });
      this.session = { ...this.session, accessToken: r.access_token, refreshToken: r.refresh_token ?? rt };
      this.onSession(this.session);
    } catch (e) {
      if (e instanceof MatrixApiError) {
        this.onSession(null);
        throw new MatrixApiError(401, "M_UNKNOWN_TOKEN", "Your session has ended. Please log in again.");
      }
      throw e;
    }
  }
}

export async function rawRequest<T = Json>(
  baseUrl: string, method: string, path: string, opts: RequestOptions & { token?: string } = {},
): Promise<T> {
  const url = new URL(path, baseUrl);
  for (const [k, v] of Object.entries(opts.query ?? {})) {
    if (v !== undefined) url.searchParams.set(k, String(v));
  }
  const headers: Record<string, string> = {};
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  let data: Json = {};
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text) as Json;
    } catch {
      data = {};
    }
  }
  if (!res.ok) {
    const errcode = typeof data.errcode === "string" ? data.errcode : "M_UNKNOWN";
    const error = typeof data.error === "string" ? data.error : `HTTP ${res.status}`;
    throw new MatrixApiError(res.status, errcode, error, data);
  }
  return data as T;
}

export const enc = encodeURIComponent;

let txnCounter = 0;
export function newTxnId(): string {
  txnCounter += 1;
  return `pw${Date.now().toString(36)}${txnCounter}${Math.random().toString(36).slice(2, 8)}`;
}
