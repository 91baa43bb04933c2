// The AI assistant against a real Parley and a fake OpenAI-compatible server on loopback
// (tests/web/test_browser_ai.py starts both): the AI server URL saved in the settings reaches the
// server's AI settings, the assistant appears, "Catch me up" streams a summary into the page,
// a question about the channel streams its answer, a reply suggestion lands in the composer, smart
// search finds a message by meaning, and an encrypted direct message is summarized by the page
// itself, which calls the person's own AI server (the fake, allowing this origin like Ollama
// with OLLAMA_ORIGINS) with the text only the browser can decrypt.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { api, assertClean, BASE, body, createChannel, launch, newPage, registerInUi, registerViaApi, RUN, send, session } from "../e2e/lib.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

const FAKE = process.env.FAKE_AI_URL;
const REPLY = process.env.FAKE_AI_REPLY;
if (!FAKE || !REPLY) throw new Error("FAKE_AI_URL is not set (tests/web/test_browser_ai.py sets it)");

let browser;
let A;
let token;
let roomId;
let ana;
const channel = `ai-${RUN}`;

async function sendApi(tok, room, text, extra = {}) {
  const txn = `t${Math.random().toString(36).slice(2)}`;
  const r = await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/${txn}`, tok,
    { msgtype: "m.text", body: text, ...extra });
  return r.event_id;
}

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  await registerInUi(A.page, `aia${RUN}`);
  await createChannel(A.page, channel, "");
  token = (await session(A.page)).accessToken;
  roomId = await A.page.evaluate(() => decodeURIComponent(location.hash.replace(/^#\/room\//, "")));
  ana = await registerViaApi(`ana${RUN}`);
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, ana.access_token, {});
  // A room of Ana's that the person is not in: never part of what the AI is sent.
  const secret = await api("POST", "/_matrix/client/v3/createRoom", ana.access_token, {});
  await sendApi(ana.access_token, secret.room_id, "the secret room plans");
  await sendApi(token, roomId, "I am on vacation all of next week");
  await sendApi(token, roomId, "pizza for lunch on friday");
  const root = await sendApi(ana.access_token, roomId, "the kestrel release is out, can someone check the dashboards?");
  await sendApi(ana.access_token, roomId, "dashboards look green in the thread",
    { "m.relates_to": { rel_type: "m.thread", event_id: root } });
  await A.page.getByText("the kestrel release is out", { exact: false }).waitFor();
});

after(async () => {
  assertClean(A.seen);
  await browser?.close();
});

test("the AI server URL from the settings reaches the server, and the assistant appears", async () => {
  assert.equal(await A.page.getByRole("button", { name: "Assistant" }).count(), 0);
  await A.page.getByRole("button", { name: "Settings" }).click();
  const form = A.page.getByRole("dialog", { name: "Settings" }).getByRole("form", { name: "AI features" });
  await form.getByLabel("AI server URL").fill(FAKE);
  await form.getByRole("button", { name: "Save AI server" }).click();
  await form.getByRole("status").waitFor();
  const saved = await api("GET", "/_matrix/client/unstable/org.parley.ai/settings", token);
  assert.equal(saved.endpoint, FAKE);
  assert.equal(saved.available, true);
  await A.page.keyboard.press("Escape");
  await A.page.getByRole("button", { name: "Assistant" }).waitFor();
});

test("catch me up streams the summary into the drawer", async () => {
  await A.page.getByRole("button", { name: "Assistant" }).click();
  const drawer = A.page.getByTestId("ai-drawer");
  await drawer.getByRole("button", { name: "Catch me up" }).click();
  const summary = drawer.getByTestId("ai-summary");
  // Part of the answer is on screen before the rest has arrived.
  await A.page.waitForFunction(() => {
    const el = document.querySelector("[data-testid=ai-summary]");
    return el && el.textContent.length > 0 && el.dataset.done === "false";
  });
  await drawer.locator("[data-testid=ai-summary][data-done=true]").waitFor();
  assert.equal(await summary.textContent(), REPLY);
  await drawer.getByLabel("Close assistant").click();
  await drawer.waitFor({ state: "detached" });
});

test("a question about the channel streams its answer into the drawer", async () => {
  await A.page.getByRole("button", { name: "Assistant" }).click();
  const drawer = A.page.getByTestId("ai-drawer");
  const ask = drawer.getByRole("form", { name: "Ask about this channel" });
  assert.equal(await ask.getByRole("button", { name: "Ask" }).isDisabled(), true);
  await ask.getByTestId("ai-question").fill("who shipped the kestrel release?");
  await ask.getByRole("button", { name: "Ask" }).click();
  await A.page.waitForFunction(() => {
    const el = document.querySelector("[data-testid=ai-summary]");
    return el && el.textContent.length > 0 && el.dataset.done === "false";
  });
  await drawer.locator("[data-testid=ai-summary][data-done=true]").waitFor();
  assert.equal(await drawer.getByTestId("ai-summary").textContent(), REPLY);
  await drawer.getByLabel("Close assistant").click();
  await drawer.waitFor({ state: "detached" });
});

test("a thread is summarized in its panel", async () => {
  await A.page.getByTestId("thread-summary").first().click();
  const panel = A.page.getByTestId("thread-panel");
  await panel.getByRole("button", { name: "Summarize thread" }).click();
  await panel.locator("[data-testid=thread-ai-summary][data-done=true]").waitFor();
  assert.equal(await panel.getByTestId("thread-ai-summary").textContent(), REPLY);
  await panel.getByLabel("Close thread").click();
  await panel.waitFor({ state: "detached" });
});

test("a reply suggestion goes into the composer", async () => {
  await A.page.getByRole("button", { name: "Suggest replies" }).click();
  const chips = A.page.getByTestId("reply-suggestion");
  await chips.first().waitFor();
  const texts = await chips.allTextContents();
  assert.deepEqual(texts, REPLY.split("\n").filter(Boolean).slice(0, 3));
  await chips.nth(1).click();
  assert.equal(await A.page.getByTestId("composer").inputValue(), texts[1]);
  assert.equal(await A.page.evaluate(() => document.activeElement?.getAttribute("data-testid")), "composer");
});

test("smart search finds a message by its meaning", async () => {
  // Messages are embedded in the background: wait until the index holds them.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await api("POST", "/_matrix/client/unstable/org.parley.ai/search", token, { search_term: "holiday", rooms: [roomId] });
    if (r.results.length >= 3) break;
    assert.ok(Date.now() < deadline, "messages are indexed for smart search");
    await A.page.waitForTimeout(250);
  }
  await A.page.getByTestId("search-box").fill("holiday");
  await A.page.getByTestId("search-box").press("Enter");
  const panel = A.page.getByTestId("search-panel");
  await panel.getByTestId("search-count").filter({ hasText: "No messages found." }).waitFor();
  await panel.getByTestId("smart-search").check();
  const first = panel.getByTestId("search-result").first();
  await first.waitFor();
  assert.match(await first.getByTestId("search-result-body").textContent(), /vacation/);
  assert.equal(await panel.getByText("the secret room plans").count(), 0);
});

test("the assistant drawer and reply suggestions have no serious accessibility violation", async () => {
  // axe is injected into a context that bypasses the page's CSP, signed in as the same person.
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const s = await session(A.page);
  await context.addInitScript((v) => localStorage.setItem("parley.session", v), JSON.stringify(s));
  await page.goto(`${BASE}#/room/${encodeURIComponent(roomId)}`);
  await page.getByRole("button", { name: "Assistant" }).click();
  await page.getByTestId("ai-drawer").getByRole("button", { name: "Catch me up" }).click();
  await page.locator("[data-testid=ai-summary][data-done=true]").waitFor();
  await page.getByRole("button", { name: "Suggest replies" }).click();
  await page.getByTestId("reply-suggestion").first().waitFor();
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  assert.deepEqual(bad, [], "assistant: serious or critical accessibility violations");
  await context.close();
});

test("an encrypted direct message is summarized in the browser, by the person's own AI server", async () => {
  const page = A.page;
  await page.getByRole("button", { name: "Start a direct message" }).click();
  await page.getByLabel("User ID").fill(ana.user_id);
  await page.getByRole("button", { name: "Start", exact: true }).click();
  await page.getByTestId("encrypted-room").waitFor({ timeout: 90_000 });
  await send(page, "the e2ee-sealed launch word is heron");
  await body(page, "the e2ee-sealed launch word is heron").waitFor({ timeout: 90_000 });
  // Once sent, the server holds only its ciphertext.
  const dm = await page.evaluate(() => decodeURIComponent(location.hash.replace(/^#\/room\//, "")));
  const deadline = Date.now() + 60_000;
  let held;
  for (;;) {
    held = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(dm)}/messages?dir=b&limit=20`, token);
    if (held.chunk.some((e) => e.type === "m.room.encrypted")) break;
    assert.ok(Date.now() < deadline, "the encrypted message reaches the server");
    await page.waitForTimeout(250);
  }
  assert.ok(!JSON.stringify(held).includes("heron"));
  await page.getByRole("button", { name: "Assistant" }).click();
  const drawer = page.getByTestId("ai-drawer");
  await drawer.getByTestId("ai-in-browser").filter({ hasText: "straight to your own AI server" }).waitFor();
  await drawer.getByRole("button", { name: "Catch me up" }).click();
  await page.waitForFunction(() => {
    const el = document.querySelector("[data-testid=ai-summary]");
    return el && el.textContent.length > 0 && el.dataset.done === "false";
  });
  await drawer.locator("[data-testid=ai-summary][data-done=true]").waitFor();
  assert.equal(await drawer.getByTestId("ai-summary").textContent(), REPLY);
  await drawer.getByLabel("Close assistant").click();
});
