// @-mentions: the composer's autocomplete picks a member, the message carries a pill (a
// matrix.to link in formatted_body) and `m.mentions.user_ids`, which drives the server's
// .m.rule.is_user_mention push rule (highlight) for the mentioned person.
import { markdownToHtml } from "./markdown";
import { memberName } from "./rooms";
import type { RoomData } from "./types";

export interface Mention {
  userId: string;
  /** The text that stands for the person in the body: "@" and their name. */
  label: string;
}

/** The "@query" being typed just before the caret, if any. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const m = /(^|\s)@([^\s@]*)$/.exec(text.slice(0, caret));
  if (!m) return null;
  return { start: caret - m[2].length - 1, query: m[2] };
}

/** Joined members other than me whose name or user ID matches, best first, at most `limit`. */
export function memberSuggestions(room: RoomData, me: string, query: string, limit = 8): { userId: string; name: string }[] {
  const q = query.toLowerCase();
  const out: { userId: string; name: string; rank: number }[] = [];
  for (const [userId, m] of Object.entries(room.members)) {
    if (userId === me || m.membership !== "join") continue;
    const name = memberName(room, userId);
    const n = name.toLowerCase();
    const id = userId.slice(1).toLowerCase();
    const rank = n.startsWith(q) || id.startsWith(q) ? 0 : n.includes(q) || id.includes(q) ? 1 : -1;
    if (rank >= 0) out.push({ userId, name, rank });
  }
  out.sort((a, b) => a.rank - b.rank || a.name.localeCompare(b.name));
  return out.slice(0, limit).map(({ userId, name }) => ({ userId, name }));
}

export function matrixToUser(userId: string): string {
  return `https://matrix.to/#/${encodeURIComponent(userId)}`;
}

function escapeMarkdown(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!<>|~]/g, "\\$&");
}

/** Message content for `text` with the mentions still present in it as pills. */
export function mentionContent(text: string, mentions: Mention[]): Record<string, unknown> {
  const present = mentions.filter((m, i) => text.includes(m.label) && mentions.findIndex((x) => x.userId === m.userId) === i);
  const content: Record<string, unknown> = { msgtype: "m.text", body: text, "m.mentions": {} };
  if (present.length === 0) {
    const html = markdownToHtml(text);
    if (html) {
      content.format = "org.matrix.custom.html";
      content.formatted_body = html;
    }
    return content;
  }
  // Longest labels first, so "@Al" never eats the start of "@Alice".
  const ordered = [...present].sort((a, b) => b.label.length - a.label.length);
  let md = "";
  let i = 0;
  while (i < text.length) {
    const hit = ordered.find((m) => text.startsWith(m.label, i));
    if (hit) {
      md += `[${escapeMarkdown(hit.label)}](${matrixToUser(hit.userId)})`;
      i += hit.label.length;
    } else {
      md += text[i];
      i += 1;
    }
  }
  content["m.mentions"] = { user_ids: present.map((m) => m.userId) };
  const html = markdownToHtml(md);
  if (html) {
    content.format = "org.matrix.custom.html";
    content.formatted_body = html;
  }
  return content;
}
