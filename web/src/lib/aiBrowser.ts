// Summaries and answers for end-to-end encrypted rooms, made in the browser (spec/ai.md,
// "Encrypted rooms"). The server never sends an encrypted room to an AI; here the page builds the
// prompt from the messages it has decrypted and calls the person's own inference server directly:
// OpenAI-compatible `POST /v1/chat/completions` streamed as Server-Sent Events, or Ollama's
// `POST /api/chat` streamed as one JSON object per line. No token goes with it (the one saved in
// the settings is sealed on the server and never returned), so this is for servers that answer
// the page's origin without one, such as Ollama with OLLAMA_ORIGINS set.
import { aggregate, displayContent, relationOf } from "./relations";
import type { MatrixEvent } from "./types";

export type ApiStyle = "openai" | "ollama";
export interface ChatMessage { role: "system" | "user" | "assistant"; content: string }
export interface BrowserEndpoint { url: string; style: ApiStyle; model: string }

/** The same instructions the server gives its model (homeserver/ai/prompts.py). */
const SUMMARY_SYSTEM = "You summarize a team chat for someone catching up. Use only the messages given. Be brief: "
  + "the decisions, open questions and who is doing what, as a few short bullet points.";
const ASK_SYSTEM = "You answer a question about a team chat channel. Use only the messages given; when they do "
  + "not hold the answer, say so. Be brief, and name who said what when it matters.";
export const MAX_MESSAGES = 400;
const MAX_LINE = 2000;
const MAX_TOKENS = 600;

export class BrowserAiError extends Error {
  constructor(message: string, readonly kind: "unreachable" | "model" | "upstream") {
    super(message);
  }
}

function stamp(ts: number): string {
  return new Date(ts).toISOString().slice(0, 16).replace("T", " ");
}

/** The readable text messages among the events the page holds, oldest first, edits applied,
 * redacted and undecryptable events left out: one `[time] sender: body` line each. */
export function transcriptLines(events: MatrixEvent[], limit = MAX_MESSAGES): string[] {
  const agg = aggregate(events, "");
  const lines: { ts: number; line: string }[] = [];
  for (const ev of events) {
    if (ev.type !== "m.room.message" || ev.unsigned?.redacted_because) continue;
    if (relationOf(ev)?.relType === "m.replace") continue;
    const body = displayContent(ev, agg)?.body;
    if (typeof body !== "string" || !body.trim()) continue;
    lines.push({ ts: ev.origin_server_ts, line: `[${stamp(ev.origin_server_ts)}] ${ev.sender}: ${body.slice(0, MAX_LINE)}` });
  }
  lines.sort((a, b) => a.ts - b.ts);
  return lines.slice(-limit).map((l) => l.line);
}

export function summaryMessages(lines: string[]): ChatMessage[] {
  return [{ role: "system", content: SUMMARY_SYSTEM }, { role: "user", content: "Messages:\n" + lines.join("\n") }];
}

export function askMessages(lines: string[], question: string): ChatMessage[] {
  return [{ role: "system", content: ASK_SYSTEM },
    { role: "user", content: "Messages:\n" + lines.join("\n") + "\n\nQuestion: " + question.trim() }];
}

/** The base URL without a trailing slash, an OpenAI-style `/v1` or an Ollama-style `/api`. */
export function baseUrl(url: string, style: ApiStyle): string {
  let base = url.replace(/\/+$/, "");
  const tail = style === "openai" ? "/v1" : "/api";
  if (base.endsWith(tail)) base = base.slice(0, -tail.length);
  return base;
}

/** The streaming chat request for the endpoint's API style. */
export function chatRequest(ep: BrowserEndpoint, messages: ChatMessage[], maxTokens = MAX_TOKENS): { url: string; init: RequestInit } {
  const base = baseUrl(ep.url, ep.style);
  const body = ep.style === "ollama"
    ? { model: ep.model, messages, stream: true, options: { num_predict: maxTokens } }
    : { model: ep.model, messages, stream: true, max_tokens: maxTokens };
  return {
    url: `${base}${ep.style === "ollama" ? "/api/chat" : "/v1/chat/completions"}`,
    init: { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) },
  };
}

/** Pieces of text out of a streamed chat response, fed with the response's text as it arrives. */
export class ChatStreamParser {
  private buf = "";
  done = false;

  constructor(private readonly style: ApiStyle) {}

  /** The text pieces completed by this chunk, in order. */
  push(chunk: string): string[] {
    this.buf += chunk;
    const out: string[] = [];
    let cut: number;
    while (!this.done && (cut = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, cut).replace(/\r$/, "");
      this.buf = this.buf.slice(cut + 1);
      const piece = this.style === "ollama" ? this.ollamaLine(line) : this.sseLine(line);
      if (piece) out.push(piece);
    }
    return out;
  }

  /** Whatever a stream that ended without a final newline still holds. */
  end(): string[] {
    return this.buf.trim() ? this.push("\n") : [];
  }

  private sseLine(line: string): string | null {
    if (!line.startsWith("data:")) return null; // blank separators, comments, `event:` fields
    const data = line.slice(5).trim();
    if (data === "[DONE]") {
      this.done = true;
      return null;
    }
    const obj = JSON.parse(data) as { choices?: { delta?: { content?: unknown } }[]; error?: { message?: string } };
    if (obj.error) throw new BrowserAiError(obj.error.message ?? "The AI server failed", "upstream");
    const content = obj.choices?.[0]?.delta?.content;
    return typeof content === "string" ? content : null;
  }

  private ollamaLine(line: string): string | null {
    if (!line.trim()) return null;
    const obj = JSON.parse(line) as { message?: { content?: unknown }; done?: boolean; error?: string };
    if (obj.error) throw new BrowserAiError(obj.error, "upstream");
    if (obj.done) this.done = true;
    const content = obj.message?.content;
    return typeof content === "string" ? content : null;
  }
}

async function errorText(res: Response): Promise<string> {
  const raw = await res.text().catch(() => "");
  try {
    const obj = JSON.parse(raw) as { error?: string | { message?: string } };
    if (typeof obj.error === "string") return obj.error;
    if (obj.error?.message) return obj.error.message;
  } catch { /* not JSON */ }
  return raw.slice(0, 200) || `HTTP ${res.status}`;
}

/** Stream a chat from the person's endpoint straight from the browser; `onToken` gets each piece. */
export async function streamChat(ep: BrowserEndpoint, messages: ChatMessage[], onToken: (text: string) => void,
  signal?: AbortSignal, fetchImpl: typeof fetch = fetch): Promise<string> {
  const { url, init } = chatRequest(ep, messages);
  let res: Response;
  try {
    res = await fetchImpl(url, { ...init, signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new BrowserAiError(
      `Your AI server at ${baseUrl(ep.url, ep.style)} cannot be reached from this page. `
      + "It must allow this page's origin (for Ollama: OLLAMA_ORIGINS).", "unreachable");
  }
  if (!res.ok || !res.body) {
    const msg = await errorText(res);
    throw new BrowserAiError(msg, res.status === 404 ? "model" : "upstream");
  }
  const parser = new ChatStreamParser(ep.style);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    const pieces = done ? parser.end() : parser.push(value);
    for (const p of pieces) {
      text += p;
      onToken(p);
    }
    if (done) break;
    if (parser.done) {
      await reader.cancel().catch(() => undefined); // the answer is complete; nothing else is read
      break;
    }
  }
  return text;
}
