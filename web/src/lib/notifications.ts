// Notification preferences as standard push rules (Client-Server API, "Push Rules"), so that
// every client of the account and the server's unread/highlight counts agree on them.
//
// Account level:
//   all       .m.rule.master off, .m.rule.message and .m.rule.encrypted notify
//   mentions  .m.rule.master off, .m.rule.message and .m.rule.encrypted do nothing: mentions,
//             keywords and two-person rooms (their own default rules) still notify
//   off       .m.rule.master on
// Keywords: one content rule each (rule ID = the keyword), notify + highlight.
// Channel level (rule ID = the room ID):
//   default   neither rule below: the account's choice applies
//   all       a room rule that notifies
//   mentions  a room rule with no actions (room rules come after mention and keyword rules)
//   mute      an override rule matching the room, with no actions (before the mention rules)
import { enc, MatrixApiError, type MatrixClient } from "./api";

export type AccountLevel = "all" | "mentions" | "off";
export type RoomLevel = "default" | "all" | "mentions" | "mute";

export interface PushRule {
  rule_id: string;
  default?: boolean;
  enabled?: boolean;
  actions?: unknown[];
  pattern?: string;
  conditions?: Record<string, unknown>[];
}

export interface Ruleset {
  override?: PushRule[];
  content?: PushRule[];
  room?: PushRule[];
  sender?: PushRule[];
  underride?: PushRule[];
}

export interface NotificationSettings {
  account: AccountLevel;
  keywords: string[];
}

const PATH = "/_matrix/client/v3/pushrules/global";
const KEYWORD_ACTIONS = ["notify", { set_tweak: "highlight" }, { set_tweak: "sound", value: "default" }];

function notifies(rule: PushRule | undefined): boolean {
  return Boolean(rule && rule.enabled !== false && (rule.actions ?? []).includes("notify"));
}

function find(rules: PushRule[] | undefined, id: string): PushRule | undefined {
  return (rules ?? []).find((r) => r.rule_id === id);
}

/** The account-wide choice and keywords that a ruleset expresses. */
export function accountSettings(rs: Ruleset): NotificationSettings {
  const master = find(rs.override, ".m.rule.master");
  const keywords = (rs.content ?? [])
    .filter((r) => !r.default && typeof r.pattern === "string" && r.enabled !== false)
    .map((r) => r.pattern as string)
    .sort((a, b) => a.localeCompare(b));
  if (master?.enabled) return { account: "off", keywords };
  const message = find(rs.underride, ".m.rule.message");
  return { account: message && !notifies(message) ? "mentions" : "all", keywords };
}

/** The channel's own choice: a muting override wins over a room rule. */
export function roomLevel(rs: Ruleset, roomId: string): RoomLevel {
  const mute = find(rs.override, roomId);
  if (mute && mute.enabled !== false && !notifies(mute)) return "mute";
  const room = find(rs.room, roomId);
  if (!room || room.enabled === false) return "default";
  return notifies(room) ? "all" : "mentions";
}

/** Keywords as typed in a comma-separated field: trimmed, without blanks or repeats. */
export function parseKeywords(text: string): string[] {
  return [...new Set(text.split(",").map((k) => k.trim()).filter((k) => k.length > 0))];
}

export async function getRuleset(client: MatrixClient): Promise<Ruleset> {
  const r = await client.request<{ global?: Ruleset }>("GET", "/_matrix/client/v3/pushrules/");
  return r.global ?? {};
}

async function deleteRule(client: MatrixClient, kind: string, id: string): Promise<void> {
  try {
    await client.request("DELETE", `${PATH}/${kind}/${enc(id)}`);
  } catch (e) {
    if (!(e instanceof MatrixApiError && e.status === 404)) throw e;
  }
}

export async function setAccountLevel(client: MatrixClient, level: AccountLevel): Promise<void> {
  await client.request("PUT", `${PATH}/override/.m.rule.master/enabled`, { body: { enabled: level === "off" } });
  if (level === "off") return;
  const actions = level === "all" ? ["notify"] : [];
  for (const id of [".m.rule.message", ".m.rule.encrypted"]) {
    await client.request("PUT", `${PATH}/underride/${id}/actions`, { body: { actions } });
  }
}

/** Make the keyword rules exactly `keywords`. */
export async function setKeywords(client: MatrixClient, rs: Ruleset, keywords: string[]): Promise<void> {
  if (keywords.some((k) => k.includes("/") || k.startsWith("."))) {
    throw new Error("A keyword cannot contain '/' or start with '.'.");
  }
  const current = (rs.content ?? []).filter((r) => !r.default);
  for (const r of current) {
    if (!keywords.includes(r.rule_id)) await deleteRule(client, "content", r.rule_id);
  }
  for (const k of keywords) {
    if (current.some((r) => r.rule_id === k && r.pattern === k)) continue;
    await client.request("PUT", `${PATH}/content/${enc(k)}`, { body: { pattern: k, actions: KEYWORD_ACTIONS } });
  }
}

export async function setRoomLevel(client: MatrixClient, roomId: string, level: RoomLevel): Promise<void> {
  if (level !== "mute") await deleteRule(client, "override", roomId);
  if (level === "default" || level === "mute") await deleteRule(client, "room", roomId);
  if (level === "mute") {
    await client.request("PUT", `${PATH}/override/${enc(roomId)}`, {
      body: { conditions: [{ kind: "event_match", key: "room_id", pattern: roomId }], actions: [] },
    });
  } else if (level !== "default") {
    await client.request("PUT", `${PATH}/room/${enc(roomId)}`, { body: { actions: level === "all" ? ["notify"] : [] } });
  }
}
