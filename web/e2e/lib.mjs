// Shared by the browser tests: a headless Debian Chromium, pages that record what must never
// happen (dialogs, script errors, CSP refusals), and small helpers for the UI and the API.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const BASE = process.env.PARLEY_URL;
if (!BASE) throw new Error("PARLEY_URL is not set (tests/web/test_browser.py sets it)");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const RUN = Date.now().toString(36);
export const PASSWORD = "correct horse battery staple";
const T = 20_000;

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/** A page whose dialogs, script errors and CSP violations are recorded in `seen`. */
export async function newPage(browser, { noWebSocket } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  if (noWebSocket) {
    // As behind a proxy without WebSocket support: every socket is closed before it opens.
    await context.routeWebSocket(/org\.parley\.ws/, (ws) => ws.close({ code: 1006 }));
  }
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const seen = { dialogs: [], errors: [], csp: [] };
  page.on("dialog", (d) => { seen.dialogs.push(d.message()); void d.dismiss(); });
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) seen.csp.push(m.text());
  });
  await page.goto(BASE);
  return { context, page, seen };
}

/** Nothing that should never happen did: no dialog, no uncaught error, nothing refused by the CSP
 * except what the sanitizer's inert parsing of hostile HTML reports (handlers and styles it drops). */
export function assertClean(seen) {
  assert.deepEqual(seen.dialogs, [], "no dialog opened");
  assert.deepEqual(seen.errors, [], "no uncaught script error");
  const refused = seen.csp.filter((m) => !/^(Executing inline event handler|Applying inline style)/.test(m));
  assert.deepEqual(refused, [], "no script, load or connection refused by the Content-Security-Policy");
}

export async function api(method, path, token, body) {
  const res = await fetch(new URL(path, BASE), {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

export async function registerViaApi(username) {
  const body = { username, password: PASSWORD, auth: { type: "m.login.dummy" } };
  return api("POST", "/_matrix/client/v3/register", undefined, body);
}

export async function registerInUi(page, username) {
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByTestId("me").filter({ hasText: `@${username}:` }).waitFor();
}

export async function createChannel(page, name, topic, { isPrivate = false } = {}) {
  await page.getByRole("button", { name: "Create a channel" }).click();
  await page.getByLabel("Name").fill(name);
  if (topic) await page.getByLabel("Topic").fill(topic);
  if (isPrivate) await page.getByRole("radio", { name: /Private/ }).check();
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.getByTestId("room-name").filter({ hasText: name }).waitFor();
}

export async function session(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")));
}

export function room(page, name) {
  return page.getByTestId("room-link").filter({ hasText: name });
}

export function message(page, text) {
  return page.getByTestId("message").filter({ hasText: text });
}

/** Message bodies that are exactly `text`. */
export function body(page, text) {
  const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return page.getByTestId("body").filter({ hasText: new RegExp(`^${escaped}$`) });
}

export async function send(page, text) {
  await page.getByTestId("composer").fill(text);
  await page.getByTestId("composer").press("Enter");
}
