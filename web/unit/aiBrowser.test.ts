import { describe, expect, it } from "vitest";
import { askMessages, baseUrl, BrowserAiError, chatRequest, ChatStreamParser, streamChat, summaryMessages, transcriptLines } from "@/lib/aiBrowser";
import type { MatrixEvent } from "@/lib/types";

// Frames as the real servers write them: OpenAI's SSE chunks ended by `data: [DONE]`, and
// Ollama's NDJSON with a final object carrying "done": true and its timings.
const openaiChunk = (delta: Record<string, unknown>, finish: string | null) => "data: " + JSON.stringify({
  id: "chatcmpl-1", object: "chat.completion.chunk", created: 1700000000, model: "llama3.2",
  system_fingerprint: "fp", choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
}) + "\n\n";
const OPENAI = openaiChunk({ role: "assistant", content: "" }, null) + openaiChunk({ content: "The " }, null)
  + openaiChunk({ content: "plan é" }, null) + openaiChunk({}, "stop") + "data: [DONE]\n\n";
const ollamaLine = (content: string, done: boolean) => JSON.stringify({
  model: "llama3.2", created_at: "2026-12-01T19:00:00Z", message: { role: "assistant", content }, done,
  ...(done ? { done_reason: "stop", total_duration: 1, eval_count: 2 } : {}),
}) + "\n";
const OLLAMA = ollamaLine("The ", false) + ollamaLine("plan é", false) + ollamaLine("", true);

function feed(style: "openai" | "ollama", text: string, size: number): { pieces: string[]; done: boolean } {
  const p = new ChatStreamParser(style);
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(...p.push(text.slice(i, i + size)));
  pieces.push(...p.end());
  return { pieces, done: p.done };
}

describe("browser-side chat with the person's own endpoint", () => {
  it("builds the streaming request of each API style", () => {
    const msgs = summaryMessages(["[2026-12-01 10:00] @a:hs: hi"]);
    const o = chatRequest({ url: "http://127.0.0.1:1234/v1/", style: "openai", model: "qwen2.5" }, msgs);
    expect(o.url).toBe("http://127.0.0.1:1234/v1/chat/completions");
    expect(JSON.parse(o.init.body as string)).toEqual({ model: "qwen2.5", messages: msgs, stream: true, max_tokens: 600 });
    expect(o.init.method).toBe("POST");
    expect(o.init.headers).toEqual({ "Content-Type": "application/json" }); // no token leaves the server
    const l = chatRequest({ url: "http://localhost:11434/api", style: "ollama", model: "llama3.2" }, msgs);
    expect(l.url).toBe("http://localhost:11434/api/chat");
    expect(JSON.parse(l.init.body as string)).toEqual({ model: "llama3.2", messages: msgs, stream: true, options: { num_predict: 600 } });
    expect(baseUrl("https://llm.example/v1", "ollama")).toBe("https://llm.example/v1");
  });

  it("parses OpenAI and Ollama streams however the bytes are split", () => {
    for (const size of [1, 3, 17, 10_000]) {
      expect(feed("openai", OPENAI, size)).toEqual({ pieces: ["The ", "plan é"], done: true });
      expect(feed("ollama", OLLAMA, size)).toEqual({ pieces: ["The ", "plan é"], done: true });
    }
    // A stream cut short is not done; what came is kept.
    expect(feed("openai", OPENAI.slice(0, OPENAI.indexOf("data: [DONE]")), 5).done).toBe(false);
  });

  it("turns an error inside the stream into an error", () => {
    expect(() => new ChatStreamParser("ollama").push('{"error":"model \\"x\\" not found, try pulling it first"}\n'))
      .toThrow(/not found/);
    expect(() => new ChatStreamParser("openai").push('data: {"error":{"message":"overloaded"}}\n\n')).toThrow("overloaded");
  });

  it("builds the transcript from the decrypted messages, edits applied, others left out", () => {
    const ev = (id: string, ts: number, type: string, content: Record<string, unknown>, extra: Partial<MatrixEvent> = {}): MatrixEvent =>
      ({ event_id: id, type, sender: "@ana:hs", origin_server_ts: ts, content, ...extra });
    const lines = transcriptLines([
      ev("$2", Date.UTC(2026, 11, 1, 10, 5), "m.room.message", { msgtype: "m.text", body: "second" }),
      ev("$1", Date.UTC(2026, 11, 1, 10, 0), "m.room.message", { msgtype: "m.text", body: "frist" }),
      ev("$e", Date.UTC(2026, 11, 1, 10, 6), "m.room.message", { msgtype: "m.text", body: "* first",
        "m.new_content": { msgtype: "m.text", body: "first" }, "m.relates_to": { rel_type: "m.replace", event_id: "$1" } }),
      ev("$x", Date.UTC(2026, 11, 1, 10, 7), "m.room.encrypted", { algorithm: "m.megolm.v1.aes-sha2", ciphertext: "AAAA" }),
      ev("$r", Date.UTC(2026, 11, 1, 10, 8), "m.room.message", {}, { unsigned: { redacted_because: {} } }),
    ]);
    expect(lines).toEqual(["[2026-12-01 10:00] @ana:hs: first", "[2026-12-01 10:05] @ana:hs: second"]);
    const ask = askMessages(lines, "  who wrote first? ");
    expect(ask[1].content).toBe("Messages:\n" + lines.join("\n") + "\n\nQuestion: who wrote first?");
  });
});

describe("streamChat", () => {
  const ep = { url: "http://127.0.0.1:11434", style: "ollama" as const, model: "llama3.2" };
  const chunked = (text: string, size: number) => new ReadableStream<Uint8Array>({
    start(c) {
      const bytes = new TextEncoder().encode(text); // split inside multi-byte characters too
      for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size));
      c.close();
    },
  });

  it("hands each piece over in order and returns the whole answer", async () => {
    const got: string[] = [];
    const out = await streamChat(ep, summaryMessages(["x"]), (t) => got.push(t), undefined,
      async () => new Response(chunked(OLLAMA, 7), { headers: { "Content-Type": "application/x-ndjson" } }));
    expect(got).toEqual(["The ", "plan é"]);
    expect(out).toBe("The plan é");
  });

  it("says what went wrong: unreachable (or CORS refused), model missing", async () => {
    const refused = streamChat(ep, [], () => undefined, undefined, async () => { throw new TypeError("Failed to fetch"); });
    await expect(refused).rejects.toThrow(/OLLAMA_ORIGINS/);
    const missing = streamChat(ep, [], () => undefined, undefined, async () =>
      new Response('{"error":"model \\"llama3.2\\" not found, try pulling it first"}', { status: 404 }));
    await expect(missing).rejects.toMatchObject({ kind: "model", message: 'model "llama3.2" not found, try pulling it first' });
    await expect(missing).rejects.toBeInstanceOf(BrowserAiError);
  });
});
