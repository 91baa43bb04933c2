// The search view against a real Parley: the box in the channel's header, results with their
// channel, sender and highlighted words, this channel or all of them, newest first, more results,
// and a picked result opening its channel at that message (older history loaded to reach it).
// A second person who joined later with joined-only history does not find what came before.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, assertClean, createChannel, launch, newPage, registerInUi, registerViaApi, room, RUN, session } from "./lib.mjs";

let browser;
let A;
let token;
const me = `sia${RUN}`;
const ops = `ops-${RUN}`;
const misc = `misc-${RUN}`;
let opsId;
let first;

async function sendApi(roomId, text) {
  const txn = `t${Math.random().toString(36).slice(2)}`;
  const r = await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, token,
    { msgtype: "m.text", body: text });
  return r.event_id;
}

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  await registerInUi(A.page, me);
  await createChannel(A.page, misc, "");
  await createChannel(A.page, ops, "");
  token = (await session(A.page)).accessToken;
  opsId = await A.page.evaluate(() => decodeURIComponent(location.hash.replace(/^#\/room\//, "")));
  const miscId = (await api("GET", "/_matrix/client/v3/joined_rooms", token)).joined_rooms.find((r) => r !== opsId);
  first = await sendApi(opsId, "The kestrel rollout starts Monday <img src=x onerror=alert(1)>");
  // Enough later messages that the first one is not in the channel's first page of history.
  for (let i = 0; i < 70; i++) await sendApi(opsId, `filler ${i}`);
  await sendApi(opsId, "kestrels finished the rollout");
  await sendApi(miscId, "kestrel sighting near the misc office");
});

after(async () => {
  assertClean(A.seen);
  await browser?.close();
});

const results = () => A.page.getByTestId("search-result");

test("search this channel from the header: room, sender, highlighted words; newest first", async () => {
  await room(A.page, ops).click();
  await A.page.getByTestId("room-name").filter({ hasText: ops }).waitFor();
  await A.page.getByTestId("search-box").fill("kestrel");
  await A.page.getByTestId("search-box").press("Enter");
  const panel = A.page.getByTestId("search-panel");
  await panel.waitFor();
  await results().nth(1).waitFor();
  assert.equal(await results().count(), 2);
  for (const r of await results().all()) {
    assert.equal(await r.getByTestId("search-result-room").textContent(), `#${ops}`);
    assert.equal(await r.getByTestId("search-result-sender").textContent(), me);
  }
  const marks = await panel.getByTestId("search-highlight").allTextContents();
  assert.deepEqual([...new Set(marks.map((m) => m.toLowerCase()))].sort(), ["kestrel", "kestrels"]);
  // Hostile text in a result is text, not markup.
  await panel.getByText("<img src=x onerror=alert(1)>", { exact: false }).waitFor();
  assert.equal(await panel.locator("img").count(), 0);
  await panel.getByRole("combobox").selectOption("recent");
  await results().first().filter({ hasText: "kestrels finished" }).waitFor();
  assert.match(await results().nth(1).textContent(), /kestrel rollout starts/);
});

test("all channels; picking a result opens its channel at the message", async () => {
  const panel = A.page.getByTestId("search-panel");
  await panel.getByRole("radio", { name: "All channels" }).check();
  await results().filter({ hasText: "misc office" }).waitFor();
  await results().nth(2).waitFor();
  assert.equal(await results().filter({ hasText: "misc office" }).getByTestId("search-result-room").textContent(), `#${misc}`);
  // The first message is older than what the channel loaded: it is fetched, shown and focused.
  await results().filter({ hasText: "rollout starts" }).click();
  const target = A.page.locator(`[data-testid=message][data-event-id="${first}"]`);
  await target.waitFor();
  await A.page.waitForFunction((id) => document.activeElement?.getAttribute("data-event-id") === id, first);
  assert.ok(await target.isVisible());
  const box = await target.boundingBox();
  const view = await A.page.getByTestId("timeline").boundingBox();
  assert.ok(box && view && box.y >= view.y && box.y + box.height <= view.y + view.height, "the message is in view");
  await panel.getByLabel("Close search").click();
  await panel.waitFor({ state: "detached" });
});

test("a person who joined later with joined-only history does not find earlier messages", async () => {
  const late = await registerViaApi(`sib${RUN}`);
  const priv = await api("POST", "/_matrix/client/v3/createRoom", token, {
    preset: "public_chat", name: `hist-${RUN}`,
    initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } }],
  });
  await sendApi(priv.room_id, "osprey plans before the join");
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(priv.room_id)}`, late.access_token, {});
  await sendApi(priv.room_id, "osprey plans after the join");
  const B = await newPage(browser);
  await B.page.evaluate((s) => localStorage.setItem("parley.session", JSON.stringify(s)), {
    baseUrl: new URL(B.page.url()).origin, userId: late.user_id, deviceId: late.device_id, accessToken: late.access_token,
  });
  await B.page.reload();
  await room(B.page, `hist-${RUN}`).click();
  await B.page.getByTestId("search-box").fill("osprey");
  await B.page.getByTestId("search-box").press("Enter");
  await B.page.getByTestId("search-result").first().waitFor();
  assert.deepEqual(await B.page.getByTestId("search-result-body").allTextContents(), ["osprey plans after the join"]);
  assertClean(B.seen);
  await B.context.close();
});
