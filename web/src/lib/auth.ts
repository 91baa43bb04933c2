// Registration, login and logout against the homeserver at the page's origin.
import { MatrixApiError, rawRequest, type Session } from "./api";

interface LoginResponse {
  user_id: string;
  device_id: string;
  access_token: string;
  refresh_token?: string;
}

const DEVICE_NAME = "Parley web";

function toSession(baseUrl: string, r: LoginResponse): Session {
  return {
    baseUrl,
    userId: r.user_id,
    deviceId: r.device_id,
    accessToken: r.access_token,
    refreshToken: r.refresh_token,
  };
}

/** The homeserver's client API base: the page's origin when it answers the client API (Parley
 * serves this client itself), else what the origin's .well-known names. */
export async function discoverBaseUrl(origin: string): Promise<string> {
  const self = origin.replace(/\/+$/, "");
  try {
    const res = await fetch(new URL("/_matrix/client/versions", self));
    if (res.ok) return self;
  } catch {
    // Not reachable here; try discovery below.
  }
  try {
    const res = await fetch(new URL("/.well-known/matrix/client", self));
    if (res.ok) {
      const wk = (await res.json()) as { "m.homeserver"?: { base_url?: string } };
      const base = wk["m.homeserver"]?.base_url;
      if (base && /^https?:\/\//.test(base)) return base.replace(/\/+$/, "");
    }
  } catch {
    // No discovery document either: the origin is the best guess.
  }
  return self;
}

export async function login(baseUrl: string, username: string, password: string): Promise<Session> {
  const r = await rawRequest<LoginResponse>(baseUrl, "POST", "/_matrix/client/v3/login", {
    body: {
      type: "m.login.password",
      identifier: { type: "m.id.user", user: username },
      password,
      refresh_token: true,
      initial_device_display_name: DEVICE_NAME,
    },
  });
  return toSession(baseUrl, r);
}

export async function register(baseUrl: string, username: string, password: string): Promise<Session> {
  const body: Record<string, unknown> = {
    username,
    password,
    refresh_token: true,
    initial_device_display_name: DEVICE_NAME,
  };
  try {
    return toSession(baseUrl, await rawRequest<LoginResponse>(baseUrl, "POST", "/_matrix/client/v3/register", { body }));
  } catch (e) {
    // User-interactive auth: complete the dummy stage when the server offers it.
    if (!(e instanceof MatrixApiError) || e.status !== 401) throw e;
    const flows = (e.body.flows as { stages: string[] }[] | undefined) ?? [];
    if (!flows.some((f) => f.stages.length === 1 && f.stages[0] === "m.login.dummy")) {
      throw new MatrixApiError(403, "M_FORBIDDEN", "This server needs a registration step this client does not support.");
    }
    body.auth = { type: "m.login.dummy", session: e.body.session };
    return toSession(baseUrl, await rawRequest<LoginResponse>(baseUrl, "POST", "/_matrix/client/v3/register", { body }));
  }
}

const KEY = "parley.session";

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return s.userId && s.accessToken && s.baseUrl ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
}
