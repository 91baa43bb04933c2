// The plugins page and slash commands against a real Parley with plugins on (test_browser.py
// puts the shipped poll plugin in the plugins folder and names PARLEY_ADMIN_USER a server admin):
// the admin installs and enables the plugin from the settings, then in a channel with its bot
// types "/po", picks /poll from the list and sends it; the plugin answers with the poll, and a
// bad use with a reply only the caller sees. A room admin then turns the plugin off for that channel.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, assertClean, createChannel, launch, newPage, registerInUi, RUN, session } from "./lib.mjs";

const ADMIN = process.env.PARLEY_ADMIN_USER;
if (!ADMIN) throw new Error("PARLEY_ADMIN_USER is not set (tests/web/test_browser.py sets it)");
let browser;
let A;
let token;
let roomId;
let bot;
const channel = `polls-${RUN}`;

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  await registerInUi(A.page, ADMIN);
  token = (await session(A.page)).accessToken;
});

after(async () => {
  await browser?.close();
});

/** Poll `what` until it is truthy, with a deadline. */
async function until(what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 200));
  }
}

function plugin(name) {
  return A.page.getByRole("dialog", { name: "Settings" }).locator(`[data-testid=plugin][data-plugin="${name}"]`);
}

test("plugins page: the admin installs and enables the poll plugin, which starts", async () => {
  await A.page.getByRole("button", { name: "Settings", exact: true }).click();
  const poll = plugin("poll");
  await poll.getByTestId("plugin-state").filter({ hasText: "not installed" }).waitFor();
  await poll.getByRole("button", { name: "Install" }).click();
  await poll.getByTestId("plugin-state").filter({ hasText: "disabled" }).waitFor();
  await poll.getByRole("button", { name: "Enable poll" }).click();
  await poll.getByTestId("plugin-state").filter({ hasText: "running" }).waitFor({ timeout: 60_000 });
  const listed = (await api("GET", "/_parley/admin/v1/plugins", token)).plugins.find((p) => p.name === "poll");
  assert.equal(listed.installed, true);
  assert.equal(listed.enabled, true);
  bot = listed.bot;
  assert.match(bot, /^@poll:/);
  await A.page.keyboard.press("Escape");
});

test("slash command: /po offers /poll, which is sent to the plugin and answered with a poll", async () => {
  await createChannel(A.page, channel, "");
  roomId = A.page.url().match(/#\/room\/(.+)$/)[1];
  roomId = decodeURIComponent(roomId);
  await api("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, token, { user_id: bot });
  // The bot joins on invite.
  await A.page.waitForFunction(async ([t, id, b]) => {
    const r = await fetch(`/_matrix/client/v3/rooms/${encodeURIComponent(id)}/joined_members`, { headers: { Authorization: `Bearer ${t}` } });
    return r.ok && b in (await r.json()).joined;
  }, [token, roomId, bot], { timeout: 60_000, polling: 200 });
  // The server offers the command once it sees the bot in the room (its plugin service may see
  // the join a moment after joined_members does).
  // Polled from here, not from the page, so the page's only requests for commands are the composer's.
  await until(async () => (await api("GET", `/_matrix/client/unstable/org.parley.plugins/rooms/${encodeURIComponent(roomId)}/commands`, token))
    .commands.some((c) => c.command === "poll"));

  const composer = A.page.getByTestId("composer");
  const asked = A.page.waitForResponse((r) => r.url().includes("/commands"));
  await composer.fill("/po");
  const listed = await asked;
  assert.equal(listed.status(), 200, await listed.text());
  assert.deepEqual((await listed.json()).commands.map((c) => c.command), ["poll"]);
  const list = A.page.getByRole("listbox", { name: "Slash commands" });
  const option = list.getByRole("option").filter({ hasText: "/poll" });
  await option.waitFor();
  assert.match(await option.textContent(), /Question \| Option \| Option/);
  await composer.press("Enter"); // picks the highlighted command
  assert.equal(await composer.inputValue(), "/poll ");
  assert.equal(await list.count(), 0);
  await composer.pressSequentially("Lunch? | Pizza | Sushi");
  await composer.press("Enter");
  const answer = A.page.locator(`[data-testid=message][data-sender="${bot}"]`).filter({ hasText: "Poll: Lunch?" });
  await answer.waitFor({ timeout: 60_000 });
  assert.equal(await answer.getByTestId("body").textContent(), "Poll: Lunch?\n1️⃣ Pizza\n2️⃣ Sushi");
  // The command itself never reaches the room.
  const history = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, token);
  assert.equal(history.chunk.some((e) => String(e.content?.body ?? "").startsWith("/poll")), false);
  assert.equal(await composer.inputValue(), "");

  // A reply only the caller sees (an ephemeral notice): shown in the channel, marked so, and
  // not part of its history.
  await composer.fill("/poll");
  await A.page.getByRole("listbox", { name: "Slash commands" }).waitFor();
  await composer.press("Escape");
  assert.equal(await A.page.getByRole("listbox", { name: "Slash commands" }).count(), 0);
  await composer.press("Enter");
  const notice = A.page.getByTestId("ephemeral-notice").filter({ hasText: "Usage: /poll" });
  await notice.waitFor({ timeout: 60_000 });
  assert.match(await notice.textContent(), /Only visible to you/);
  const later = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, token);
  assert.equal(later.chunk.some((e) => String(e.content?.body ?? "").startsWith("Usage:")), false);
});

test("per channel: the room admin turns the plugin off; its command is no longer offered", async () => {
  const link = A.page.getByTestId("room-link").filter({ hasText: channel });
  await link.hover();
  await A.page.getByRole("button", { name: `Notifications and plugins for #${channel}` }).click();
  const box = A.page.getByRole("dialog", { name: `#${channel}: notifications and plugins` }).getByRole("checkbox", { name: "poll" });
  await box.waitFor();
  assert.equal(await box.isChecked(), true);
  await box.uncheck();
  await A.page.waitForFunction(async ([t, id]) => {
    const r = await fetch(`/_matrix/client/unstable/org.parley.plugins/rooms/${encodeURIComponent(id)}/plugins`,
      { headers: { Authorization: `Bearer ${t}` } });
    return r.ok && (await r.json()).plugins.some((p) => p.plugin === "poll" && p.room_choice === false);
  }, [token, roomId]);
  await A.page.keyboard.press("Escape");
  const listed = await api("GET", `/_matrix/client/unstable/org.parley.plugins/rooms/${encodeURIComponent(roomId)}/commands`, token);
  assert.deepEqual(listed.commands, []);
  const asked = A.page.waitForResponse((r) => r.url().includes("/commands"));
  await A.page.getByTestId("composer").fill("/po");
  assert.deepEqual((await (await asked).json()).commands, []);
  assert.equal(await A.page.getByRole("listbox", { name: "Slash commands" }).count(), 0);
  await A.page.getByTestId("composer").fill("");
  assertClean(A.seen);
});
