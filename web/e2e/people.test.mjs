// People in the conversation, two browser contexts against a real Parley: @-mention
// autocomplete (the pill, m.mentions, and the highlight it gives the other person), presence
// dots on direct messages and in the member list following the other person's presence, and the "new messages"
// divider at the first unread message when a channel is opened.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, assertClean, body, createChannel, launch, message, newPage, registerInUi, room, RUN, send, session } from "./lib.mjs";

let browser;
let A;
let B;
let aSession;
let bSession;
let roomId;
const amy = `pamy${RUN}`;
const bob = `pbob${RUN}`;
const channel = `talk-${RUN}`;
const elsewhere = `side-${RUN}`;

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  B = await newPage(browser);
  await registerInUi(A.page, amy);
  await registerInUi(B.page, bob);
  aSession = await session(A.page);
  bSession = await session(B.page);
  await createChannel(B.page, elsewhere, "");
  await createChannel(A.page, channel, "");
  roomId = decodeURIComponent(A.page.url().match(/#\/room\/(.+)$/)[1]);
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, bSession.accessToken, {});
  await A.page.getByText(`${bob} joined`).waitFor();
  await room(B.page, channel).waitFor();
});

after(async () => {
  await browser?.close();
});

test("@-mention: autocomplete inserts the person, the message carries m.mentions and a pill, and highlights for them", async () => {
  const composer = A.page.getByTestId("composer");
  await composer.fill("hey ");
  await composer.pressSequentially(`@${bob.slice(0, 5)}`);
  const list = A.page.getByRole("listbox", { name: "People" });
  await list.getByRole("option").filter({ hasText: bSession.userId }).waitFor();
  await composer.press("Enter");
  assert.equal(await composer.inputValue(), `hey @${bob} `);
  await composer.pressSequentially("can you look?");
  await composer.press("Enter");

  const pill = message(B.page, "can you look?").locator(".mention-pill");
  // B is reading another channel: the mention shows as a highlighted unread there.
  const badge = room(B.page, channel).getByTestId("unread-badge");
  await badge.filter({ hasText: /^1$/ }).waitFor();
  assert.equal(await badge.getAttribute("data-highlight"), "true");
  await room(B.page, channel).click();
  await B.page.getByTestId("room-name").filter({ hasText: channel }).waitFor();
  await message(B.page, "can you look?").waitFor();
  assert.equal(await pill.count(), 1, await message(B.page, "can you look?").innerHTML());
  assert.equal(await pill.getAttribute("data-mention"), bSession.userId);
  assert.equal(await pill.textContent(), `@${bob}`);

  const history = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=10`, aSession.accessToken);
  const sent = history.chunk.find((e) => e.content?.body === `hey @${bob} can you look?`);
  assert.deepEqual(sent.content["m.mentions"], { user_ids: [bSession.userId] });
  assert.match(sent.content.formatted_body, new RegExp(`<a href="https://matrix.to/#/${encodeURIComponent(bSession.userId).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"[^>]*>@${bob}</a>`));
});

test("presence: a direct message and the member list show the other person online, then offline when they go", async () => {
  const dm = await api("POST", "/_matrix/client/v3/createRoom", aSession.accessToken,
    { is_direct: true, invite: [bSession.userId], preset: "trusted_private_chat" });
  await api("PUT", `/_matrix/client/v3/user/${encodeURIComponent(aSession.userId)}/account_data/m.direct`,
    aSession.accessToken, { [bSession.userId]: [dm.room_id] });
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(dm.room_id)}`, bSession.accessToken, {});
  const dot = A.page.locator(`[data-testid=dm-list] [data-testid=presence][data-user-id="${bSession.userId}"]`);
  // B's client says it is online while open.
  await dot.and(A.page.locator("[data-presence=online]")).waitFor();
  assert.equal(await dot.getAttribute("aria-label"), "online");
  // The channel's member list shows it too.
  await room(A.page, channel).click();
  await A.page.getByRole("button", { name: "2 members" }).click();
  const listed = A.page.getByTestId("member-list").locator(`[data-testid=member][data-user-id="${bSession.userId}"] [data-testid=presence]`);
  await listed.and(A.page.locator("[data-presence=online]")).waitFor();
  await api("PUT", `/_matrix/client/v3/presence/${encodeURIComponent(bSession.userId)}/status`, bSession.accessToken,
    { presence: "offline" });
  await dot.and(A.page.locator("[data-presence=offline]")).waitFor();
  await listed.and(A.page.locator("[data-presence=offline]")).waitFor();
  await A.page.keyboard.press("Escape");
  assert.equal(await A.page.getByTestId("member-list").count(), 0);
});

/** Wait until the server's fully-read marker of `page`'s user is the shown message with `text`. */
async function waitMarker(page, text) {
  await page.waitForFunction(async ([s, id, want]) => {
    const r = await fetch(`/_matrix/client/v3/user/${encodeURIComponent(s.userId)}/rooms/${encodeURIComponent(id)}/account_data/m.fully_read`,
      { headers: { Authorization: `Bearer ${s.accessToken}` } });
    if (!r.ok) return false;
    const marker = (await r.json()).event_id;
    const ev = document.querySelector(`[data-testid=message][data-event-id="${marker}"] [data-testid=body]`);
    return ev?.textContent === want;
  }, [bSession, roomId, text], { polling: 100 });
}

test("new messages: opening a channel puts a divider before the first message not yet read", async () => {
  await send(A.page, "read before");
  await body(B.page, "read before").waitFor();
  // B's client marks what it shows as read: wait until the server holds that marker.
  await waitMarker(B.page, "read before");
  await room(B.page, elsewhere).click();
  await B.page.getByTestId("room-name").filter({ hasText: elsewhere }).waitFor();
  await send(A.page, "unread one");
  await send(A.page, "unread two");
  await room(B.page, channel).getByTestId("unread-badge").filter({ hasText: /^2$/ }).waitFor();
  await room(B.page, channel).click();
  const divider = B.page.getByTestId("new-messages");
  await divider.waitFor();
  // The divider sits between the last read message and the first unread one.
  const order = await B.page.evaluate(() => [...document.querySelectorAll("[data-testid=timeline] [data-row]")]
    .map((r) => (r.querySelector("[data-testid=new-messages]") ? "|NEW|" : r.querySelector("[data-testid=body]")?.textContent ?? ""))
    .filter((t) => t));
  const at = order.indexOf("|NEW|");
  assert.deepEqual(order.slice(at - 1, at + 3), ["read before", "|NEW|", "unread one", "unread two"]);
  assert.equal(order.filter((t) => t === "|NEW|").length, 1);
  // Once read, the line moves on: the next unread message gets it.
  await waitMarker(B.page, "unread two");
  await room(B.page, elsewhere).click();
  await B.page.getByTestId("room-name").filter({ hasText: elsewhere }).waitFor();
  await send(A.page, "unread three");
  await room(B.page, channel).getByTestId("unread-badge").filter({ hasText: /^1$/ }).waitFor();
  await room(B.page, channel).click();
  await body(B.page, "unread three").waitFor();
  const again = await B.page.evaluate(() => [...document.querySelectorAll("[data-testid=timeline] [data-row]")]
    .map((r) => (r.querySelector("[data-testid=new-messages]") ? "|NEW|" : r.querySelector("[data-testid=body]")?.textContent ?? ""))
    .filter((t) => t));
  assert.deepEqual(again.slice(-3), ["unread two", "|NEW|", "unread three"]);
  assert.equal(again.filter((t) => t === "|NEW|").length, 1);
  assertClean(A.seen);
  assertClean(B.seen);
});
