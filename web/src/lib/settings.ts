// The person's settings: profile, password, devices, theme and the AI server URL. Requests that
// the server guards with user-interactive auth (password change, signing out a device) are sent
// once, and again with the password when the server asks for it (m.login.password).
import { getAiSettings, putAiEndpoint } from "./ai";
import { enc, MatrixApiError, type MatrixClient } from "./api";
export type Theme = "light" | "dark" | "system";

export interface Device {
  device_id: string;
  display_name?: string;
  last_seen_ts?: number;
  last_seen_ip?: string;
}

async function withPassword<T>(client: MatrixClient, method: string, path: string, body: Record<string, unknown>,
  password: string): Promise<T> {
  try {
    return await client.request<T>(method, path, { body });
  } catch (e) {
    if (!(e instanceof MatrixApiError) || e.status !== 401 || !e.body.flows) throw e;
    const session = typeof e.body.session === "string" ? e.body.session : undefined;
    try {
      return await client.request<T>(method, path, {
        body: {
          ...body,
          auth: { type: "m.login.password", identifier: { type: "m.id.user", user: client.userId }, password, session },
        },
      });
    } catch (e2) {
      if (e2 instanceof MatrixApiError && e2.status === 401) {
        throw new MatrixApiError(401, "M_FORBIDDEN", "That password is not right.", e2.body);
      }
      throw e2;
    }
  }
}

export async function getDisplayName(client: MatrixClient): Promise<string> {
  try {
    const r = await client.request<{ displayname?: string }>("GET", `/_matrix/client/v3/profile/${enc(client.userId)}/displayname`);
    return r.displayname ?? "";
  } catch (e) {
    if (e instanceof MatrixApiError && e.status === 404) return "";
    throw e;
  }
}

export async function setDisplayName(client: MatrixClient, name: string): Promise<void> {
  await client.request("PUT", `/_matrix/client/v3/profile/${enc(client.userId)}/displayname`, { body: { displayname: name.trim() } });
}

export async function changePassword(client: MatrixClient, current: string, next: string): Promise<void> {
  if (next.length < 8) throw new Error("Choose a new password of at least 8 characters.");
  await withPassword(client, "POST", "/_matrix/client/v3/account/password", { new_password: next, logout_devices: false }, current);
}

export async function listDevices(client: MatrixClient): Promise<Device[]> {
  const r = await client.request<{ devices?: Device[] }>("GET", "/_matrix/client/v3/devices");
  return (r.devices ?? []).sort((a, b) => (b.last_seen_ts ?? 0) - (a.last_seen_ts ?? 0));
}

export async function renameDevice(client: MatrixClient, deviceId: string, name: string): Promise<void> {
  await client.request("PUT", `/_matrix/client/v3/devices/${enc(deviceId)}`, { body: { display_name: name.trim() } });
}

export async function deleteDevice(client: MatrixClient, deviceId: string, password: string): Promise<void> {
  await withPassword(client, "DELETE", `/_matrix/client/v3/devices/${enc(deviceId)}`, {}, password);
}

/** The person's own inference server, as the server holds it (`spec/ai.md`, AI settings). The
 * server reads it for summaries, suggestions and smart search, and refuses addresses its policy
 * does not allow (private and loopback addresses, unless the admin allows them). */
export async function getAiServer(client: MatrixClient): Promise<string> {
  const s = await getAiSettings(client);
  return s?.endpoint ?? "";
}

export async function setAiServer(client: MatrixClient, url: string): Promise<void> {
  const u = url.trim();
  if (u && !/^https?:\/\/[^\s]+$/.test(u)) throw new Error("Enter an http:// or https:// URL, or leave it empty.");
  await putAiEndpoint(client, u);
}

/** The stored theme, applied to the page (the `dark` class on <html>). */
export function loadTheme(): Theme {
  const t = typeof window === "undefined" ? null : window.localStorage.getItem("parley.theme");
  return t === "light" || t === "dark" ? t : "system";
}

export function applyTheme(theme: Theme): void {
  window.localStorage.setItem("parley.theme", theme);
  const dark = theme === "dark" || (theme === "system" && window.matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.classList.toggle("dark", dark);
}
