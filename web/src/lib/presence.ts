// Presence (m.presence): this client says it is online while it is open, since Parley's
// WebSocket sync (unlike /sync) does not count as activity; others' presence comes from sync.
import { enc, type MatrixClient } from "./api";
import type { Presence } from "./types";

export const PRESENCE_REFRESH_MS = 60_000;

export async function announceOnline(client: MatrixClient): Promise<void> {
  await client.request("PUT", `/_matrix/client/v3/presence/${enc(client.userId)}/status`, { body: { presence: "online" } });
}

/** What a dot shows: online, away (unavailable) or offline (also when nothing is known). */
export function presenceState(p: Presence | undefined): "online" | "away" | "offline" {
  if (!p) return "offline";
  if (p.presence === "online") return "online";
  if (p.presence === "unavailable") return "away";
  return "offline";
}
