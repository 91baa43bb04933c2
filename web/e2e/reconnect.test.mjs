// A server restart in mid-conversation: both clients show "Reconnecting…", come back by
// themselves (the WebSocket one stays on the WebSocket), and catch up from their last sync token
// without losing or repeating a message. PARLEY_CONTROL_URL (tests/web/test_browser.py) stops
// and starts the server on the same port and database.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  api, assertClean, body, createChannel, launch, newPage, registerInUi, registerViaApi, RUN, send, session,
} from "./lib.mjs";

const CONTROL = process.env.PARLEY_CONTROL_URL;
if (!CONTROL) throw new Error("PARLEY_CONTROL_URL is not set (tests/web/test_browser.py sets it)");

async function control(action) {
  const res = await fetch(`${CONTROL}/${action}`, { method: "POST" });
  assert.equal(res.status, 204, `server ${action}`);
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test("a server restart: reconnecting, then caught up with nothing lost or repeated", async () => {
  const A = await newPage(browser);
  await registerInUi(A.page, `ann${RUN}`);
  const B = await newPage(browser, { noWebSocket: true });
  await registerInUi(B.page, `ben${RUN}`);
  const carol = await registerViaApi(`cid${RUN}`);
  await createChannel(A.page, `ops-${RUN}`);
  const roomId = decodeURIComponent(new URL(A.page.url()).hash.replace("#/room/", ""));
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, (await session(B.page)).accessToken, {});
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, carol.access_token, {});
  await B.page.getByTestId("room-link").filter({ hasText: `ops-${RUN}` }).click();
  await send(A.page, "before the restart");
  await body(B.page, "before the restart").waitFor();

  await control("stop");
  for (const p of [A.page, B.page]) await p.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor();
  await control("start");
  const url = (i) => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/away${i}`;
  for (let i = 0; i < 5; i++) {
    await api("PUT", url(i), carol.access_token, { msgtype: "m.text", body: `while you were away ${i}` });
  }

  for (const p of [A.page, B.page]) {
    await p.locator("[data-testid=sync-status][data-status=live]").waitFor();
    await body(p, "while you were away 4").waitFor();
    await p.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "detached" });
  }
  assert.equal(await A.page.getByTestId("sync-status").getAttribute("data-transport"), "websocket");
  await send(B.page, "back again");
  await body(A.page, "back again").waitFor();
  await send(A.page, "welcome back");
  await body(B.page, "welcome back").waitFor();

  for (const p of [A.page, B.page]) {
    const texts = await p.getByTestId("body").allTextContents();
    const expected = ["before the restart", ...[0, 1, 2, 3, 4].map((i) => `while you were away ${i}`),
      "back again", "welcome back"];
    assert.deepEqual(texts.filter((t) => expected.includes(t)), expected, "each message once, in order");
  }
  assertClean(A.seen);
  assertClean(B.seen);
});
