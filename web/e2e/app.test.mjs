// The built client in Debian's Chromium against a real Parley (PARLEY_URL): two people register,
// chat in real time (one over the WebSocket, one over long-poll /sync), read older history, see
// hostile content rendered as text, and log out. Run by tests/web/test_browser.py.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  api, assertClean, createChannel, launch, message, newPage as openPage, PASSWORD, registerInUi, registerViaApi, room,
  RUN, send, session,
} from "./lib.mjs";
import { XSS } from "./xss-corpus.mjs";

let browser;
const watched = [];

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

async function newPage(opts) {
  const p = await openPage(browser, opts);
  watched.push(p.seen);
  return p;
}

async function assertNothingInjected(page) {
  const found = await page.evaluate(() => {
    const tags = ":is(script, iframe, object, embed, img, svg, math, input, details, form, style)";
    // The channel header's own search box is the one form that belongs there.
    const bad = [...document.querySelectorAll(
      `[data-testid=timeline] ${tags}, nav ${tags}, section > header ${tags}, [role=dialog] ${tags}`)]
      .filter((e) => !e.matches("form[data-testid=search-form], form[data-testid=search-form] > input[data-testid=search-box]"));
    const handlers = [...document.querySelectorAll("*")]
      .filter((el) => [...el.attributes].some((a) => a.name.startsWith("on")));
    const jsLinks = [...document.querySelectorAll("a[href]")]
      .filter((a) => /^\s*javascript:/i.test(a.getAttribute("href")));
    return { xss: window.__xss ?? null, bad: bad.map((e) => e.outerHTML), handlers: handlers.map((e) => e.outerHTML),
      jsLinks: jsLinks.map((e) => e.outerHTML) };
  });
  assert.deepEqual(found, { xss: null, bad: [], handlers: [], jsLinks: [] });
}

const alice = `alice${RUN}`;
const bob = `bob${RUN}`;
const channel = `general-${RUN}`;
let A;
let B;

test("login errors are shown in words", async () => {
  A = await newPage();
  await A.page.getByLabel("Username").fill(alice);
  await A.page.getByLabel("Password", { exact: true }).fill("wrong password");
  await A.page.getByRole("button", { name: "Log in" }).click();
  const alert = await A.page.locator("form [role=alert]").textContent();
  assert.match(alert, /password|forbidden|invalid|not allowed/i);
  assert.doesNotMatch(alert, /M_[A-Z_]+/);
});

test("register, then a reload stays logged in", async () => {
  await registerInUi(A.page, alice);
  await A.page.reload();
  await A.page.getByTestId("me").filter({ hasText: `@${alice}:` }).waitFor();
  const stored = await A.page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")));
  assert.ok(stored.refreshToken, "the session keeps a refresh token");
});

test("an expired access token is refreshed without logging out", async () => {
  await A.page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("parley.session"));
    localStorage.setItem("parley.session", JSON.stringify({ ...s, accessToken: "syt_expired" }));
  });
  await A.page.reload();
  await A.page.getByTestId("me").waitFor();
  await A.page.locator("[data-testid=sync-status][data-status=live]").waitFor();
  const stored = await A.page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")));
  assert.notEqual(stored.accessToken, "syt_expired");
  const who = await api("GET", "/_matrix/client/v3/account/whoami", stored.accessToken);
  assert.equal(who.user_id, await A.page.getByTestId("me").textContent());
});

test("create a public channel with a topic", async () => {
  await createChannel(A.page, channel, "Where everything happens");
  await A.page.getByTestId("room-topic").filter({ hasText: "Where everything happens" }).waitFor();
  await room(A.page, channel).waitFor();
});

test("a second person joins from the directory and they talk in real time both ways", async () => {
  B = await newPage({ noWebSocket: true });
  // A taken username is refused in words.
  await B.page.getByRole("button", { name: "Create an account" }).click();
  await B.page.getByLabel("Username").fill(alice);
  await B.page.getByLabel("Password", { exact: true }).fill("another password");
  await B.page.getByLabel("Confirm password").fill("another password");
  await B.page.getByRole("button", { name: "Create account" }).click();
  await B.page.locator("form [role=alert]").filter({ hasText: "already taken" }).waitFor();
  await B.page.getByRole("button", { name: "Log in" }).last().click();
  await registerInUi(B.page, bob);
  await B.page.getByRole("button", { name: "Browse channels" }).click();
  const entry = B.page.getByTestId("public-room").filter({ hasText: channel });
  await entry.getByRole("button", { name: "Join" }).click();
  await B.page.getByTestId("room-name").filter({ hasText: channel }).waitFor();

  await send(A.page, "hello bob, **welcome**");
  await message(B.page, "hello bob, welcome").waitFor();
  assert.equal(await message(B.page, "hello bob").locator("strong").textContent(), "welcome");
  await send(B.page, "hi alice");
  await message(A.page, "hi alice").waitFor();
  await A.page.getByText(`${bob} joined`).waitFor();

  assert.equal(await A.page.getByTestId("sync-status").getAttribute("data-transport"), "websocket");
  assert.equal(await B.page.getByTestId("sync-status").getAttribute("data-transport"), "long-poll");
  // The page's own scripts and connections pass its Content-Security-Policy.
  assert.deepEqual([...A.seen.csp, ...B.seen.csp], []);
  // Two messages in a row from one person share one header.
  await send(B.page, "and a second line");
  await message(A.page, "and a second line").waitFor();
  const last = message(A.page, "and a second line");
  assert.equal(await last.getByTestId("sender").count(), 0);
  assert.ok(await A.page.getByTestId("day-separator").filter({ hasText: "Today" }).count() >= 1);
});

test("an unread badge appears on a channel not being read, and clears when it is opened", async () => {
  await createChannel(A.page, `quiet-${RUN}`, "", { isPrivate: true });
  // A private channel is invite-only and stays out of the directory.
  const quietId = await room(A.page, `quiet-${RUN}`).getAttribute("data-room-id");
  const token = (await session(A.page)).accessToken;
  const rules = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(quietId)}/state/m.room.join_rules/`, token);
  assert.equal(rules.join_rule, "invite");
  const listed = await api("GET", "/_matrix/client/v3/publicRooms", token);
  assert.ok(listed.chunk.some((r) => r.name === channel) && !listed.chunk.some((r) => r.room_id === quietId));
  await send(B.page, "ping while you are away");
  const badge = room(A.page, channel).getByTestId("unread-badge");
  await badge.waitFor();
  assert.equal(await badge.textContent(), "1");
  await room(A.page, channel).click();
  await message(A.page, "ping while you are away").waitFor();
  await badge.waitFor({ state: "detached" });
});

test("a direct message: started by one, accepted by the other, with an unread badge", async () => {
  const bobId = await B.page.getByTestId("me").textContent();
  await A.page.getByRole("button", { name: "Start a direct message" }).click();
  await A.page.getByLabel("User ID").fill(`@nobody${RUN}:${bobId.split(":").slice(1).join(":")}`);
  await A.page.getByRole("button", { name: "Start", exact: true }).click();
  await A.page.getByRole("dialog").getByRole("alert").filter({ hasText: "There is no user" }).waitFor();
  await A.page.getByLabel("User ID").fill(bobId);
  await A.page.getByRole("button", { name: "Start", exact: true }).click();
  await A.page.getByTestId("dm-list").getByTestId("room-link").waitFor();
  await send(A.page, "just between us");

  const invite = B.page.getByTestId("invite").filter({ hasText: "Direct message from" });
  await invite.getByRole("button", { name: "Join" }).click();
  await message(B.page, "just between us").waitFor();
  const bobsDm = B.page.getByTestId("dm-list").getByTestId("room-link");
  assert.equal((await bobsDm.textContent()).trim().replace(/^@/, ""), alice);

  await room(A.page, channel).click();
  await send(B.page, "are you there?");
  const badge = A.page.getByTestId("dm-list").getByTestId("unread-badge");
  await badge.waitFor();
  assert.equal(await badge.textContent(), "1");
  await A.page.getByTestId("dm-list").getByTestId("room-link").click();
  await message(A.page, "are you there?").waitFor();
  await badge.waitFor({ state: "detached" });
  await room(A.page, channel).click();
  await room(B.page, channel).click();
});

test("older history loads on scroll", async () => {
  const carol = await registerViaApi(`carol${RUN}`);
  const roomId = await room(A.page, channel).getAttribute("data-room-id");
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, carol.access_token, {});
  for (let i = 0; i < 70; i++) {
    await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/h${i}`,
      carol.access_token, { msgtype: "m.text", body: `history number ${i}` });
  }
  await message(A.page, "history number 69").waitFor();
  const pages = [];
  A.page.on("request", (r) => { if (/\/messages\?/.test(r.url())) pages.push(new URL(r.url()).searchParams.get("dir")); });
  await A.page.reload();
  await message(A.page, "history number 69").waitFor();
  const exact = (n) => A.page.getByTestId("body").filter({ hasText: new RegExp(`^history number ${n}$`) });
  const timeline = A.page.getByTestId("timeline");
  await timeline.hover();
  for (let i = 0; i < 30 && (await A.page.getByTestId("history-start").count()) === 0; i++) {
    const first = await A.page.getByTestId("message").first().getAttribute("data-event-id");
    await A.page.mouse.wheel(0, -10_000);
    // Wait for the page of older events (or the room's start) to arrive before scrolling again.
    await A.page.waitForFunction((first) => document.querySelector("[data-testid=history-start]")
      || document.querySelector("[data-testid=message]")?.getAttribute("data-event-id") !== first, first);
  }
  await A.page.getByTestId("history-start").waitFor();
  await exact(0).waitFor();
  assert.ok(pages.length >= 1 && pages.every((d) => d === "b"), "older events came from /messages, backwards");
  await message(A.page, "hello bob").waitFor();
  const bodies = await A.page.getByTestId("message").filter({ hasText: "history number" }).allTextContents();
  const numbers = bodies.map((t) => Number(/history number (\d+)/.exec(t)[1]));
  assert.deepEqual(numbers, [...numbers].sort((a, b) => a - b), "messages stay in order");
  assert.equal(new Set(numbers).size, 70, "no message is lost or repeated");
});

test("hostile message content, display names and room names render as text", async () => {
  const mallory = await registerViaApi(`mallory${RUN}`);
  const token = mallory.access_token;
  const roomId = await room(A.page, channel).getAttribute("data-room-id");
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, token, {});
  await api("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(mallory.user_id)}/displayname`, token,
    { displayname: `<img src=x onerror="window.__xss=99;alert(99)">Mallory` });
  for (const [i, payload] of XSS.entries()) {
    await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/x${i}`, token,
      { msgtype: "m.text", body: payload, format: "org.matrix.custom.html", formatted_body: payload });
    await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/p${i}`, token,
      { msgtype: "m.text", body: `plain ${i}: ${payload}` });
  }
  // A room with a hostile name and topic that Alice is invited to and joins.
  const aliceId = await A.page.getByTestId("me").textContent();
  await api("POST", "/_matrix/client/v3/createRoom", token, {
    name: `<svg onload="window.__xss=98;alert(98)">evil`, topic: XSS[1], invite: [aliceId],
  });
  await message(A.page, `plain ${XSS.length - 1}:`).waitFor();
  // The plain-text bodies show the payload literally.
  assert.equal(await message(A.page, "plain 0:").getByTestId("body").textContent(), `plain 0: ${XSS[0]}`);
  await A.page.getByTestId("sender").filter({ hasText: "Mallory" }).first().waitFor();
  await assertNothingInjected(A.page);
  await assertNothingInjected(B.page);
  // The sanitized HTML keeps the harmless text, without the javascript: link.
  const link = A.page.getByTestId("body").filter({ hasText: /^click me$/ });
  await link.waitFor();
  assert.equal(await link.locator("a").count(), 1);
  assert.equal(await link.locator("a[href]").count(), 0);
  const invite = A.page.getByTestId("invite").filter({ hasText: "evil" });
  await invite.waitFor();
  assert.equal(await invite.getByTestId("invite-name").textContent(), `<svg onload="window.__xss=98;alert(98)">evil`);
  await invite.getByRole("button", { name: "Join" }).click();
  await A.page.getByTestId("room-name").filter({ hasText: "evil" }).waitFor();
  assert.equal(await A.page.getByTestId("room-topic").textContent(), XSS[1]);
  await assertNothingInjected(A.page);
  // Leaving takes the room out of the sidebar.
  await A.page.getByRole("button", { name: "Leave" }).click();
  await room(A.page, "evil").waitFor({ state: "detached" });
  await room(A.page, channel).waitFor();
});

test("on a phone-sized screen the sidebar and the channel take turns", async () => {
  await A.page.setViewportSize({ width: 375, height: 700 });
  await room(A.page, channel).click();
  await A.page.getByTestId("composer").waitFor();
  assert.equal(await A.page.getByRole("navigation", { name: "Channels" }).isVisible(), false);
  const width = await A.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no sideways scrolling (${width}px)`);
  await A.page.getByRole("button", { name: "Back to channels" }).click();
  await room(A.page, channel).waitFor();
  assert.equal(await A.page.getByTestId("composer").count(), 0);
  await A.page.setViewportSize({ width: 1200, height: 800 });
});

test("log out returns to the login screen and forgets the session", async () => {
  const { accessToken } = await B.page.evaluate(() => JSON.parse(localStorage.getItem("parley.session")));
  await B.page.getByRole("button", { name: "Log out" }).click();
  await B.page.getByRole("button", { name: "Log in" }).waitFor();
  await B.page.reload();
  await B.page.getByRole("button", { name: "Log in" }).waitFor();
  assert.equal(await B.page.evaluate(() => localStorage.getItem("parley.session")), null);
  await assert.rejects(api("GET", "/_matrix/client/v3/account/whoami", accessToken), /401/);
  // Logging in again brings back the same channels.
  await B.page.getByLabel("Username").fill(bob);
  await B.page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await B.page.getByRole("button", { name: "Log in" }).click();
  await B.page.getByTestId("me").filter({ hasText: `@${bob}:` }).waitFor();
  await room(B.page, channel).waitFor();
  assert.notEqual((await session(B.page)).accessToken, accessToken);
});

test("nothing ran that should not have", () => {
  for (const seen of watched) assertClean(seen);
});
