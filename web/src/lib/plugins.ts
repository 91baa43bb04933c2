// Parley's plugin extension (spec/plugins.md): slash commands for the composer, the room admins'
// per-room choices and the server admins' management API. Against a server without plugins the
// command list is simply empty.
import { enc, MatrixApiError, type MatrixClient } from "./api";

const EXT = "/_matrix/client/unstable/org.parley.plugins";
const ADMIN = "/_parley/admin/v1/plugins";

export interface SlashCommand {
  command: string;
  description?: string;
  usage?: string;
  plugin: string;
}

export interface AdminPlugin {
  name: string;
  installed: boolean;
  enabled: boolean;
  version?: string;
  bot?: string;
  commands?: string[];
  missing?: boolean;
  process?: { state?: string };
}

export interface RoomPlugin {
  plugin: string;
  enabled: boolean;
  room_choice: boolean | null;
}

/** The commands of the plugins enabled in the room; none when the server has no such API. */
export async function listCommands(client: MatrixClient, roomId: string): Promise<SlashCommand[]> {
  try {
    const r = await client.request<{ commands?: SlashCommand[] }>("GET", `${EXT}/rooms/${enc(roomId)}/commands`);
    return r.commands ?? [];
  } catch (e) {
    if (e instanceof MatrixApiError && (e.status === 404 || e.status === 400 || e.errcode === "M_UNRECOGNIZED")) return [];
    throw e;
  }
}

export async function runCommand(client: MatrixClient, roomId: string, command: string, args: string): Promise<void> {
  await client.request("POST", `${EXT}/rooms/${enc(roomId)}/commands/${enc(command)}`, { body: { args } });
}

/** "/poll a | b" → the known command and its arguments; null when the text is not one of them. */
export function parseCommand(text: string, known: SlashCommand[]): { command: string; args: string } | null {
  const m = /^\/([^\s/]+)(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!m || !known.some((c) => c.command === m[1])) return null;
  return { command: m[1], args: (m[2] ?? "").trim() };
}

/** Commands whose name starts with what follows the slash, while the name is being typed. */
export function matchingCommands(text: string, known: SlashCommand[]): SlashCommand[] {
  const m = /^\/([^\s/]*)$/.exec(text);
  if (!m) return [];
  return known.filter((c) => c.command.startsWith(m[1].toLowerCase()));
}

/** Null when the user is not a server admin (the API answers 403) or the server has no plugins API. */
export async function adminPlugins(client: MatrixClient): Promise<AdminPlugin[] | null> {
  try {
    const r = await client.request<{ plugins?: AdminPlugin[] }>("GET", ADMIN);
    return r.plugins ?? [];
  } catch (e) {
    if (e instanceof MatrixApiError && [403, 404, 400].includes(e.status)) return null;
    throw e;
  }
}

export async function installPlugin(client: MatrixClient, name: string): Promise<void> {
  await client.request("POST", `${ADMIN}/install`, { body: { name } });
}

export async function setPluginEnabled(client: MatrixClient, name: string, enabled: boolean): Promise<void> {
  await client.request("PUT", `${ADMIN}/${enc(name)}/enabled`, { body: { enabled } });
}

export async function roomPlugins(client: MatrixClient, roomId: string): Promise<RoomPlugin[]> {
  try {
    const r = await client.request<{ plugins?: RoomPlugin[] }>("GET", `${EXT}/rooms/${enc(roomId)}/plugins`);
    return r.plugins ?? [];
  } catch (e) {
    if (e instanceof MatrixApiError && (e.status === 404 || e.errcode === "M_UNRECOGNIZED")) return [];
    throw e;
  }
}

export async function setRoomPlugin(client: MatrixClient, roomId: string, name: string, enabled: boolean): Promise<void> {
  await client.request("PUT", `${EXT}/rooms/${enc(roomId)}/plugins/${enc(name)}`, { body: { enabled } });
}
