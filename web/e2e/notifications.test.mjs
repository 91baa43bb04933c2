// Notification settings against a real Parley: the account's level and keywords and a channel's
// own level are saved as standard push rules (checked on the server), and the unread and
// highlight badges the server then counts follow them. Browser notifications (Web Push): the
// service worker, the server's VAPID key, the pusher when the browser can subscribe, and the
// worker's handling of a push delivered to it.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, assertClean, BASE, createChannel, launch, newPage, PASSWORD, registerInUi, registerViaApi, room, RUN, session } from "./lib.mjs";

let browser;
let B;
let bToken;
let ann;
const ben = `nben${RUN}`;
const loud = `loud-${RUN}`;
const quiet = `quiet-${RUN}`;
const rooms = {};

before(async () => {
  browser = await launch();
  B = await newPage(browser);
  await registerInUi(B.page, ben);
  bToken = (await session(B.page)).accessToken;
  ann = await registerViaApi(`nann${RUN}`);
  const cat = await registerViaApi(`ncat${RUN}`);
  // Three members, so the default rules for two-person rooms do not apply.
  for (const name of [loud, quiet]) {
    const r = await api("POST", "/_matrix/client/v3/createRoom", ann.access_token, { name, preset: "public_chat" });
    rooms[name] = r.room_id;
    for (const token of [bToken, cat.access_token]) {
      await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(r.room_id)}`, token, {});
    }
  }
  // B reads a channel of their own, so the others collect unread messages.
  await createChannel(B.page, `own-${RUN}`, "");
  await room(B.page, loud).waitFor();
  await room(B.page, quiet).waitFor();
});

after(async () => {
  await browser?.close();
});

let txn = 0;
function say(roomName, text, mentions) {
  const content = { msgtype: "m.text", body: text, ...(mentions ? { "m.mentions": { user_ids: mentions } } : {}) };
  txn += 1;
  return api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[roomName])}/send/m.room.message/n${RUN}${txn}`,
    ann.access_token, content);
}

function badge(name) {
  return room(B.page, name).getByTestId("unread-badge");
}

async function rules() {
  return (await api("GET", "/_matrix/client/v3/pushrules/", bToken)).global;
}

function settings() {
  return B.page.getByRole("dialog", { name: "Settings" });
}

test("account: mentions and keywords only, saved as push rules; a keyword highlights, plain messages do not count", async () => {
  await B.page.getByRole("button", { name: "Settings", exact: true }).click();
  const form = settings().getByRole("form", { name: "Notifications" });
  await form.getByRole("radio", { name: "Direct messages, mentions and keywords" }).check();
  await form.getByLabel(/^Keywords/).fill("deploy, outage");
  await form.getByRole("button", { name: "Save notifications" }).click();
  await form.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  await B.page.keyboard.press("Escape");

  const rs = await rules();
  const message = rs.underride.find((r) => r.rule_id === ".m.rule.message");
  assert.deepEqual(message.actions, []);
  assert.deepEqual(rs.underride.find((r) => r.rule_id === ".m.rule.encrypted").actions, []);
  assert.equal(rs.override.find((r) => r.rule_id === ".m.rule.master").enabled, false);
  const keywords = rs.content.filter((r) => !r.default).map((r) => [r.rule_id, r.pattern, r.actions.some((a) => a.set_tweak === "highlight")]);
  assert.deepEqual(keywords.sort(), [["deploy", "deploy", true], ["outage", "outage", true]]);

  await say(loud, "lunch anyone?");
  await say(loud, "the deploy is done");
  // Only the keyword counts: one unread, and it is a highlight.
  await badge(loud).filter({ hasText: /^1$/ }).waitFor();
  assert.equal(await badge(loud).getAttribute("data-highlight"), "true");

  // Reopened, the dialog shows what the server holds.
  await B.page.getByRole("button", { name: "Settings", exact: true }).click();
  assert.equal(await form.getByRole("radio", { name: "Direct messages, mentions and keywords" }).isChecked(), true);
  assert.equal(await form.getByLabel(/^Keywords/).inputValue(), "deploy, outage");
  await B.page.keyboard.press("Escape");
});

test("channel: mute silences even a mention; 'all new messages' overrides the account's level", async () => {
  await room(B.page, quiet).hover();
  await B.page.getByRole("button", { name: `Notifications and plugins for #${quiet}` }).click();
  let dialog = B.page.getByRole("dialog", { name: `#${quiet}: notifications and plugins` });
  await dialog.getByRole("radio", { name: /^Mute/ }).click();
  await room(B.page, quiet).and(B.page.locator("[data-muted]")).waitFor();
  await B.page.keyboard.press("Escape");
  await room(B.page, loud).hover();
  await B.page.getByRole("button", { name: `Notifications and plugins for #${loud}` }).click();
  dialog = B.page.getByRole("dialog", { name: `#${loud}: notifications and plugins` });
  await dialog.getByRole("radio", { name: "All new messages" }).check();
  await B.page.waitForFunction(async ([token, id]) => {
    const r = await fetch(`/_matrix/client/v3/pushrules/global/room/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${token}` } });
    return r.ok && (await r.json()).actions?.[0] === "notify";
  }, [bToken, rooms[loud]]);
  await B.page.keyboard.press("Escape");

  const rs = await rules();
  const mute = rs.override.find((r) => r.rule_id === rooms[quiet]);
  assert.deepEqual(mute.actions, []);
  assert.deepEqual(mute.conditions, [{ kind: "event_match", key: "room_id", pattern: rooms[quiet] }]);
  // User overrides come before the server's mention rule, so the mute wins.
  const ids = rs.override.map((r) => r.rule_id);
  assert.ok(ids.indexOf(rooms[quiet]) < ids.indexOf(".m.rule.is_user_mention"));

  const me = (await session(B.page)).userId;
  await say(quiet, `${ben}: are you there?`, [me]);
  await say(loud, "plain news");
  // Parley counts unread messages with the rules as they are now: in the loud channel all
  // three count (lunch, deploy, news). The mention in the muted channel went before the news,
  // and counts as nothing.
  await badge(loud).filter({ hasText: /^3$/ }).waitFor();
  assert.equal(await badge(quiet).count(), 0);
  const sync = await api("GET", "/_matrix/client/v3/sync?timeout=0", bToken);
  assert.deepEqual(sync.rooms.join[rooms[quiet]].unread_notifications, { notification_count: 0, highlight_count: 0 });

  // Back to the account's level: both rules are gone.
  await room(B.page, quiet).hover();
  await B.page.getByRole("button", { name: `Notifications and plugins for #${quiet}` }).click();
  dialog = B.page.getByRole("dialog", { name: `#${quiet}: notifications and plugins` });
  await dialog.getByRole("radio", { name: "As in my settings" }).click();
  await room(B.page, quiet).and(B.page.locator(":not([data-muted])")).waitFor();
  await B.page.keyboard.press("Escape");
  const after = await rules();
  assert.equal(after.override.some((r) => r.rule_id === rooms[quiet]), false);
  assert.equal(after.room.some((r) => r.rule_id === rooms[quiet]), false);
  assertClean(B.seen);
});

test("browser notifications: the service worker subscribes with the server's key and shows pushes", async () => {
  // Web Push needs a profile that may use the browser's push service: the notifications
  // permission granted, in a context of its own.
  const context = await browser.newContext();
  await context.grantPermissions(["notifications"], { origin: BASE });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(BASE);
  // The same person on a second device (a session of its own, as a login here would give).
  const login = await api("POST", "/_matrix/client/v3/login", undefined, {
    type: "m.login.password", identifier: { type: "m.id.user", user: ben }, password: PASSWORD,
  });
  const second = { ...(await session(B.page)), deviceId: login.device_id, accessToken: login.access_token,
    refreshToken: login.refresh_token };
  await page.evaluate((s) => localStorage.setItem("parley.session", JSON.stringify(s)), second);
  await page.reload();
  await page.getByTestId("me").waitFor();
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  const push = page.getByTestId("webpush");
  await push.getByRole("button", { name: "Turn on browser notifications" }).click();
  const outcome = push.getByRole("status").or(push.getByRole("alert"));
  await outcome.waitFor();

  // The service worker is registered and active either way.
  const sw = await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration("/");
    return { active: reg?.active?.scriptURL ?? null, permission: Notification.permission };
  });
  assert.equal(sw.active, new URL("/sw.js", BASE).href);
  assert.equal(sw.permission, "granted");

  const pushers = (await api("GET", "/_matrix/client/v3/pushers", bToken)).pushers;
  const endpoint = await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration("/");
    return (await reg.pushManager.getSubscription())?.endpoint ?? null;
  });
  if (endpoint) {
    // A browser with a reachable push service: the subscription is the pusher.
    await push.getByRole("status").filter({ hasText: "Browser notifications are on." }).waitFor();
    const mine = pushers.find((p) => p.pushkey === endpoint);
    assert.equal(mine.kind, "org.parley.webpush");
    assert.equal(mine.app_id, "org.parley.web");
    assert.ok(mine.data.p256dh && mine.data.auth);
  } else {
    // Headless Chromium has no push service here (Playwright's contexts are off the record,
    // where Chromium refuses push): the refusal is shown in words and nothing is registered.
    await push.getByRole("alert").filter({ hasText: /could not subscribe to notifications/ }).waitFor();
    assert.deepEqual(pushers.filter((p) => p.kind === "org.parley.webpush"), []);
  }

  // What a push does once it arrives: the worker shows it, tagged by room, titled by sender.
  const cdp = await context.newCDPSession(page);
  const registered = new Promise((resolve) => cdp.on("ServiceWorker.workerRegistrationUpdated", (ev) => {
    const r = ev.registrations.find((x) => x.scopeURL === new URL("/", BASE).href && !x.isDeleted);
    if (r) resolve(r.registrationId);
  }));
  await cdp.send("ServiceWorker.enable");
  const registrationId = await registered;
  const payload = { room_id: rooms[loud], room_name: loud, sender_display_name: "Ann", body: "push body" };
  await cdp.send("ServiceWorker.deliverPushMessage", { origin: new URL(BASE).origin, registrationId, data: JSON.stringify(payload) });
  const shown = await page.waitForFunction(async () => {
    const reg = await navigator.serviceWorker.getRegistration("/");
    const n = (await reg.getNotifications())[0];
    return n ? { title: n.title, body: n.body, tag: n.tag, room: n.data?.room_id } : null;
  }, undefined, { polling: 100 });
  assert.deepEqual(await shown.jsonValue(), { title: `Ann in ${loud}`, body: "push body", tag: rooms[loud], room: rooms[loud] });
  assert.deepEqual(errors, []);
  await context.close();
});

test("the plugins page is for server admins only", async () => {
  const asked = B.page.waitForResponse((r) => new URL(r.url()).pathname === "/_parley/admin/v1/plugins");
  await B.page.getByRole("button", { name: "Settings", exact: true }).click();
  assert.equal((await asked).status(), 403);
  await settings().getByRole("form", { name: "AI features" }).waitFor();
  assert.equal(await settings().getByRole("region", { name: "Plugins" }).count(), 0);
  await B.page.keyboard.press("Escape");
});
