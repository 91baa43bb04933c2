// Settings, organizations and keyboard use against a real Parley: display name, theme (kept
// across a reload), password change, devices (rename one, sign another out with the password),
// the AI server URL in the server's AI settings, switching channels and finding the shortcuts from the
// keyboard alone, and an organization (a Matrix space) with a channel made inside it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, assertClean, createChannel, launch, newPage, PASSWORD, registerInUi, room, RUN, session } from "./lib.mjs";

let browser;
let A;
const dee = `dee${RUN}`;
const NEW_PASSWORD = "a much longer new password";

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  await registerInUi(A.page, dee);
});

after(async () => {
  await browser?.close();
});

function settings() {
  return A.page.getByRole("dialog", { name: "Settings" });
}

async function openSettings() {
  if (await settings().count()) return;
  await A.page.getByRole("button", { name: "Settings" }).click();
  await settings().waitFor();
}

test("display name: saved to the profile", async () => {
  await createChannel(A.page, `mine-${RUN}`, "");
  await openSettings();
  const form = settings().getByRole("form", { name: "Profile" });
  await form.getByLabel("Display name").fill("Dee Dee");
  await form.getByRole("button", { name: "Save name" }).click();
  await form.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  const me = (await session(A.page)).userId;
  const profile = await api("GET", `/_matrix/client/v3/profile/${encodeURIComponent(me)}`);
  assert.equal(profile.displayname, "Dee Dee");
});

test("theme: dark is applied at once and kept across a reload", async () => {
  await openSettings();
  await settings().getByRole("radio", { name: "Dark" }).check();
  assert.equal(await A.page.evaluate(() => document.documentElement.classList.contains("dark")), true);
  const bg = await A.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await A.page.reload();
  await A.page.getByTestId("me").waitFor();
  await A.page.waitForFunction(() => document.documentElement.classList.contains("dark"));
  assert.equal(await A.page.evaluate(() => getComputedStyle(document.body).backgroundColor), bg);
  assert.notEqual(bg, "rgb(255, 255, 255)");
  await openSettings();
  await settings().getByRole("radio", { name: "Light" }).check();
  assert.equal(await A.page.evaluate(() => document.documentElement.classList.contains("dark")), false);
});

test("devices: rename one, sign another out with the password", async () => {
  const other = await api("POST", "/_matrix/client/v3/login", undefined, {
    type: "m.login.password", identifier: { type: "m.id.user", user: dee }, password: PASSWORD,
    initial_device_display_name: "old laptop",
  });
  await openSettings();
  // The list is read when the dialog opens: open it afresh to see the new device.
  await A.page.keyboard.press("Escape");
  await openSettings();
  const row = settings().locator(`[data-testid=device][data-device-id="${other.device_id}"]`);
  await row.waitFor();
  await row.getByLabel(`Name of device ${other.device_id}`).fill("work laptop");
  await row.getByRole("button", { name: "Rename" }).click();
  await A.page.waitForFunction(async ([token, id]) => {
    const r = await fetch(`/_matrix/client/v3/devices/${id}`, { headers: { Authorization: `Bearer ${token}` } });
    return (await r.json()).display_name === "work laptop";
  }, [other.access_token, other.device_id]);
  await row.getByRole("button", { name: "Sign out" }).click();
  await row.getByLabel("Your password, to sign the device out").fill("not my password");
  await row.getByRole("button", { name: "Confirm sign out" }).click();
  await row.getByRole("alert").filter({ hasText: "password is not right" }).waitFor();
  await row.getByLabel("Your password, to sign the device out").fill(PASSWORD);
  await row.getByRole("button", { name: "Confirm sign out" }).click();
  await row.waitFor({ state: "detached" });
  await assert.rejects(api("GET", "/_matrix/client/v3/account/whoami", other.access_token), /401/);
  const mine = settings().locator(`[data-testid=device][data-device-id="${(await session(A.page)).deviceId}"]`);
  await mine.getByText("This device").waitFor();
});

test("password change needs the current password", async () => {
  await openSettings();
  const form = settings().getByRole("form", { name: "Password" });
  await form.getByLabel("Current password").fill("wrong");
  await form.getByLabel("New password").fill(NEW_PASSWORD);
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByRole("alert").filter({ hasText: "password is not right" }).waitFor();
  await form.getByLabel("Current password").fill(PASSWORD);
  await form.getByLabel("New password").fill(NEW_PASSWORD);
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByRole("status").filter({ hasText: "Password changed." }).waitFor();
  const login = await api("POST", "/_matrix/client/v3/login", undefined, {
    type: "m.login.password", identifier: { type: "m.id.user", user: dee }, password: NEW_PASSWORD,
  });
  assert.ok(login.access_token);
  // This browser's session goes on.
  await api("GET", "/_matrix/client/v3/account/whoami", (await session(A.page)).accessToken);
});

test("the AI server URL is saved in the server's AI settings, which refuse private addresses", async () => {
  await openSettings();
  const form = settings().getByRole("form", { name: "AI features" });
  await form.getByLabel("AI server URL").fill("javascript:alert(1)");
  await form.getByRole("button", { name: "Save AI server" }).click();
  await form.getByRole("alert").filter({ hasText: "http" }).waitFor();
  // The server's default policy (public-only) keeps it from becoming a proxy into its own network.
  await form.getByLabel("AI server URL").fill("http://127.0.0.1:11434");
  await form.getByRole("button", { name: "Save AI server" }).click();
  await form.getByRole("alert").filter({ hasText: "not allowed" }).waitFor();
  const s = await session(A.page);
  const AI = "/_matrix/client/unstable/org.parley.ai/settings";
  assert.equal((await api("GET", AI, s.accessToken)).endpoint, null);
  await form.getByLabel("AI server URL").fill("https://8.8.8.8/v1");
  await form.getByRole("button", { name: "Save AI server" }).click();
  await form.getByRole("status").waitFor();
  const saved = await api("GET", AI, s.accessToken);
  assert.equal(saved.endpoint, "https://8.8.8.8/v1");
  assert.equal(saved.api_style, "openai");
  assert.equal(saved.available, true);
  // Emptied again, so the assistant does not show in the tests that follow.
  await form.getByLabel("AI server URL").fill("");
  await form.getByRole("button", { name: "Save AI server" }).click();
  const deadline = Date.now() + 20_000;
  while ((await api("GET", AI, s.accessToken)).endpoint !== null) {
    assert.ok(Date.now() < deadline, "the emptied AI server URL reaches the server");
    await A.page.waitForTimeout(100);
  }
  await A.page.keyboard.press("Escape");
  await settings().waitFor({ state: "detached" });
});

test("keyboard: Alt+arrows switch channels, Ctrl+/ lists the shortcuts, focus returns after a dialog", async () => {
  await createChannel(A.page, `zeta-${RUN}`, "");
  const current = () => A.page.locator("[data-testid=room-link][aria-current=page]").textContent();
  assert.match(await current(), /zeta-/);
  await A.page.getByTestId("composer").focus();
  await A.page.keyboard.press("Alt+ArrowUp");
  await A.page.getByTestId("room-name").filter({ hasText: `mine-${RUN}` }).waitFor();
  await A.page.keyboard.press("Alt+ArrowDown");
  await A.page.getByTestId("room-name").filter({ hasText: `zeta-${RUN}` }).waitFor();
  // Switching a channel puts the cursor in its composer.
  assert.equal(await A.page.evaluate(() => document.activeElement?.getAttribute("data-testid")), "composer");
  await A.page.keyboard.press("Control+/");
  const help = A.page.getByRole("dialog", { name: "Keyboard shortcuts" });
  await help.getByText("Edit your last message").waitFor();
  await A.page.keyboard.press("Escape");
  await help.waitFor({ state: "detached" });
  assert.equal(await A.page.evaluate(() => document.activeElement?.getAttribute("data-testid")), "composer");
});

test("an organization (a space): created, channels made inside it, the sidebar filtered by it", async () => {
  const acme = `Acme ${RUN}`;
  await A.page.getByRole("button", { name: "Create an organization" }).click();
  await A.page.getByLabel("Organization name").fill(acme);
  await A.page.getByRole("dialog").getByRole("button", { name: "Create", exact: true }).click();
  const orgButton = A.page.getByTestId("org").filter({ hasText: acme });
  await orgButton.waitFor();
  assert.equal(await orgButton.getAttribute("aria-pressed"), "true");
  await A.page.getByRole("heading", { name: `Channels in ${acme}` }).waitFor();
  await room(A.page, `mine-${RUN}`).waitFor({ state: "detached" });
  await A.page.getByRole("button", { name: "Create a channel" }).click();
  await A.page.getByTestId("in-org").filter({ hasText: acme }).waitFor();
  await A.page.getByLabel("Name").fill(`acme-chat-${RUN}`);
  await A.page.getByRole("button", { name: "Create", exact: true }).click();
  await A.page.getByTestId("room-name").filter({ hasText: `acme-chat-${RUN}` }).waitFor();
  const chat = room(A.page, `acme-chat-${RUN}`);
  await chat.waitFor();
  const chatId = await chat.getAttribute("data-room-id");
  const token = (await session(A.page)).accessToken;
  const joined = await api("GET", "/_matrix/client/v3/joined_rooms", token);
  let spaceId = null;
  for (const id of joined.joined_rooms) {
    const create = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(id)}/state/m.room.create/`, token);
    if (create.type === "m.space") spaceId = id;
  }
  assert.ok(spaceId, "the organization is a space");
  const child = await api("GET",
    `/_matrix/client/v3/rooms/${encodeURIComponent(spaceId)}/state/m.space.child/${encodeURIComponent(chatId)}`, token);
  assert.ok(Array.isArray(child.via) && child.via.length === 1);
  await A.page.getByTestId("org").filter({ hasText: "All channels" }).click();
  await room(A.page, `mine-${RUN}`).waitFor();
  await chat.waitFor();
});

test("nothing ran that should not have", () => {
  assertClean(A.seen);
});
