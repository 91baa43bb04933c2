// An accessibility scan (axe-core) of the main screens against a real Parley: the login form, the
// channel view with messages, reactions and a thread open, and the settings dialog, in light and
// dark themes. No serious or critical violation may be found. axe is injected into a context
// that bypasses the page's CSP (the scan is the only script that needs it).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { BASE, createChannel, launch, message, registerInUi, RUN, send } from "./lib.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
let browser;
let page;

before(async () => {
  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, bypassCSP: true });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(BASE);
});

after(async () => {
  await browser?.close();
});

async function scan(what) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  assert.deepEqual(bad, [], `${what}: serious or critical accessibility violations`);
}

test("the login screen", async () => {
  await page.getByRole("button", { name: "Log in" }).waitFor();
  await scan("login");
});

test("a channel with messages, a reaction and a thread open, light and dark", async () => {
  await registerInUi(page, `ada${RUN}`);
  await createChannel(page, `a11y-${RUN}`, "A topic");
  await send(page, "hello **there**, see https://example.org");
  await send(page, "a second message");
  const m = message(page, "a second message");
  await m.hover();
  await m.getByRole("button", { name: "Add reaction" }).click();
  await page.getByRole("button", { name: "React with party" }).click();
  await m.getByTestId("reaction").waitFor();
  await m.getByRole("button", { name: "Reply in thread" }).click();
  await page.getByTestId("thread-composer").fill("in the thread");
  await page.getByTestId("thread-composer").press("Enter");
  await page.getByTestId("thread-panel").getByTestId("body").filter({ hasText: "in the thread" }).waitFor();
  await page.mouse.move(0, 0);
  await scan("channel, light");
  await page.evaluate(() => document.documentElement.classList.add("dark"));
  try {
    await scan("channel, dark");
  } finally {
    await page.evaluate(() => document.documentElement.classList.remove("dark"));
  }
});

test("the settings dialog", async () => {
  await page.getByRole("button", { name: "Settings" }).click();
  await page.getByRole("dialog", { name: "Settings" }).getByTestId("device").first().waitFor();
  await scan("settings");
  await page.keyboard.press("Escape");
});

test("the search view with results, light and dark", async () => {
  await page.getByTestId("search-box").fill("message");
  await page.getByTestId("search-box").press("Enter");
  await page.getByTestId("search-result").first().waitFor();
  await scan("search, light");
  await page.evaluate(() => document.documentElement.classList.add("dark"));
  try {
    await scan("search, dark");
  } finally {
    await page.evaluate(() => document.documentElement.classList.remove("dark"));
  }
  await page.getByLabel("Close search").click();
});
