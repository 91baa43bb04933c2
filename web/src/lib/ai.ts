// Parley's AI features (spec/ai.md, `/_matrix/client/unstable/org.parley.ai`): the person's
// inference server (kept by the server, which seals the token), channel summaries streamed over
// Server-Sent Events, and reply suggestions. Shown only when the server says `available`.
import { enc, MatrixApiError, type MatrixClient } from "./api";

export const AI = "/_matrix/client/unstable/org.parley.ai";

export interface AiSettings {
  endpoint: string | null;
  api_style: "openai" | "ollama";
  has_token: boolean;
  models: Record<string, string>;
  server: { enabled: boolean; endpoint_configured: boolean; user_endpoints: string; summary_model?: string };
  available: boolean;
}

/** The person's AI settings as the server holds them; null when the server has no AI API. */
export async function getAiSettings(client: MatrixClient): Promise<AiSettings | null> {
  try {
    return await client.request<AiSettings>("GET", `${AI}/settings`);
  } catch (e) {
    if (e instanceof MatrixApiError && (e.status === 404 || e.errcode === "M_UNRECOGNIZED")) return null;
    throw e;
  }
}

/** Ollama serves its own API on port 11434 (or under /api); everything else is taken to speak
 * the OpenAI-compatible API (LM Studio, llama.cpp's server, vLLM, hosted services). */
export function apiStyleOf(url: string): "openai" | "ollama" {
  try {
    const u = new URL(url);
    return u.port === "11434" || /^\/api\/?$/.test(u.pathname) ? "ollama" : "openai";
  } catch {
    return "openai";
  }
}

export async function putAiEndpoint(client: MatrixClient, url: string): Promise<void> {
  await client.request("PUT", `${AI}/settings`, { body: { endpoint: url || null, api_style: apiStyleOf(url) } });
}

export type SummaryScope = { kind: "channel" } | { kind: "unread" } | { kind: "thread"; rootId: string };

/**
 * Stream a summary of the channel: `onToken` gets each piece as it arrives. Errors known before
 * any text (no endpoint, encrypted room, nothing to summarize) come as MatrixApiError; aborting
 * the signal closes the request, and the server stops its upstream request.
 */
export async function streamSummary(client: MatrixClient, roomId: string, scope: SummaryScope,
  onToken: (text: string) => void, signal?: AbortSignal): Promise<string> {
  const body: Record<string, unknown> = { stream: true };
  if (scope.kind === "unread") body.since = "read_marker";
  if (scope.kind === "thread") body.thread_id = scope.rootId;
  return streamSse(client, `${AI}/rooms/${enc(roomId)}/summarize`, body, onToken, signal);
}

/** Stream the answer to a question about the channel, like a summary. */
export async function streamAnswer(client: MatrixClient, roomId: string, question: string,
  onToken: (text: string) => void, signal?: AbortSignal): Promise<string> {
  return streamSse(client, `${AI}/rooms/${enc(roomId)}/ask`, { stream: true, question }, onToken, signal);
}

async function streamSse(client: MatrixClient, path: string, body: Record<string, unknown>,
  onToken: (text: string) => void, signal?: AbortSignal): Promise<string> {
  const url = new URL(path, client.session.baseUrl);
  const send = () => fetch(url, {
    method: "POST", signal, body: JSON.stringify(body),
    headers: { Authorization: `Bearer ${client.session.accessToken}`, "Content-Type": "application/json", Accept: "text/event-stream" },
  });
  let res = await send();
  if (res.status === 401) {
    await client.refresh();
    res = await send();
  }
  if (!res.ok || !res.body) {
    const data = await res.json().catch(() => ({})) as { errcode?: string; error?: string };
    throw new MatrixApiError(res.status, data.errcode ?? "M_UNKNOWN", data.error ?? `HTTP ${res.status}`, data);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut: number;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const ev = /^event: (.*)$/m.exec(frame)?.[1];
      const raw = /^data: (.*)$/m.exec(frame)?.[1];
      if (!ev || raw === undefined) continue;
      const data = JSON.parse(raw) as { text?: string; errcode?: string; error?: string };
      if (ev === "ai.token" && data.text) {
        text += data.text;
        onToken(data.text);
      } else if (ev === "ai.error") {
        throw new MatrixApiError(502, data.errcode ?? "M_UNKNOWN", data.error ?? "The AI server failed");
      } else if (ev === "ai.done") {
        return data.text ?? text;
      }
    }
  }
  return text;
}

export async function suggestReplies(client: MatrixClient, roomId: string, eventId: string): Promise<string[]> {
  const r = await client.request<{ suggestions?: string[] }>("POST", `${AI}/rooms/${enc(roomId)}/suggest_replies`, { body: { event_id: eventId } });
  return (r.suggestions ?? []).filter((s) => typeof s === "string" && s.trim());
}

/** What a person reads when an AI request fails. */
export function describeAiError(e: unknown): string | null {
  if (!(e instanceof MatrixApiError)) return null;
  switch (e.errcode) {
    case "ORG.PARLEY.AI_NOT_CONFIGURED": return "No AI server is set up. Add one in Settings.";
    case "ORG.PARLEY.AI_ENCRYPTED_ROOM": return "This channel is encrypted: its messages are never sent to the server's AI.";
    case "ORG.PARLEY.AI_NOTHING_TO_SUMMARIZE": return "There is nothing new to summarize.";
    case "ORG.PARLEY.AI_UNAVAILABLE": return "The AI server cannot be reached.";
    case "ORG.PARLEY.AI_TIMEOUT": return "The AI server took too long to answer.";
    case "ORG.PARLEY.AI_MODEL_NOT_FOUND": return "The AI server does not have the model asked for.";
    default: return null;
  }
}
