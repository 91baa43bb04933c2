// End-to-end encrypted direct messages in the browser: two people on the web client, and the web
// client with matrix-js-sdk (Element's SDK, its Rust crypto, tests/jssdk/party.mjs in `echo`
// mode). Every plaintext here contains SEALED; tests/web/test_browser.py then searches the
// server's database for it and must not find it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { api, assertClean, BASE, body, launch, newPage as openPage, registerInUi, registerViaApi, RUN, send, session } from "./lib.mjs";

const SEALED = "e2ee-sealed";
const SLOW = 90_000; // a loaded 2-core machine compiles the crypto's WebAssembly slowly
// A 2x2 PNG.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGM4IScHRAwQCgAfJgQRoo8irwAAAABJRU5ErkJggg==";
const PARTY = fileURLToPath(new URL("../../tests/jssdk/party.mjs", import.meta.url));

let browser;
const watched = [];

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

async function newPage() {
  const p = await openPage(browser);
  watched.push(p.seen);
  return p;
}

/** Poll `check` until it returns something truthy, or fail after `ms`. */
async function until(what, check, ms = SLOW) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The browser's device has published its identity keys (its crypto is running). */
async function keysPublished(page) {
  const s = await session(page);
  await until(`device keys of ${s.userId}`, async () => {
    const q = await api("POST", "/_matrix/client/v3/keys/query", s.accessToken, { device_keys: { [s.userId]: [] } });
    return q.device_keys?.[s.userId]?.[s.deviceId]?.keys;
  });
  return s;
}

async function cryptoStores(page) {
  return page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name).filter((n) => n.startsWith("parley-crypto:")));
}

async function startDirect(page, userId) {
  await page.getByRole("button", { name: "Start a direct message" }).click();
  await page.getByTestId("dm-encrypted-note").waitFor();
  await page.getByLabel("User ID").fill(userId);
  await page.getByRole("button", { name: "Start", exact: true }).click();
  await page.getByTestId("encrypted-room").waitFor();
}

/** What the server holds of a room's messages, seen through /messages. */
async function serverView(token, roomId) {
  const r = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, token);
  return r.chunk;
}

test("two people exchange an encrypted direct message both ways, read it after a reload, and logging out forgets the keys", async () => {
  const A = await newPage();
  const B = await newPage();
  // Bob's to-device messages (the room keys) can be held back on the way to his browser, as
  // when a key travels by another path than the message and arrives later.
  const keys = { hold: false, held: [] };
  await B.context.routeWebSocket(/org\.parley\.ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      const frame = typeof m === "string" ? JSON.parse(m) : null;
      if (frame?.type !== "sync") return ws.send(m);
      const toDevice = frame.to_device?.events ?? [];
      if (keys.hold) {
        keys.held.push(...toDevice);
        frame.to_device = { events: [] };
      } else if (keys.held.length > 0) {
        frame.to_device = { events: [...keys.held.splice(0), ...toDevice] };
      }
      ws.send(JSON.stringify(frame));
    });
  });
  await registerInUi(A.page, `ea${RUN}`);
  await registerInUi(B.page, `eb${RUN}`);
  const alice = await keysPublished(A.page);
  const bob = await keysPublished(B.page);

  keys.hold = true;
  await startDirect(A.page, bob.userId);
  const roomId = await A.page.getByTestId("dm-list").getByTestId("room-link").getAttribute("data-room-id");
  const hello = `${SEALED}: hello bob ${RUN}`;
  await send(A.page, hello);
  await body(A.page, hello).waitFor();

  const invite = B.page.getByTestId("invite").filter({ hasText: "Direct message from" });
  await invite.getByRole("button", { name: "Join" }).click();
  await B.page.getByTestId("encrypted-room").waitFor();
  // Without its key the message is a placeholder; when the key arrives it is decrypted in place.
  await B.page.getByTestId("undecryptable").waitFor({ timeout: SLOW });
  assert.ok(keys.held.some((e) => e.type === "m.room.encrypted"), "the room key was held back");
  keys.hold = false;
  const reply = `${SEALED}: hello alice ${RUN}`;
  await send(B.page, reply); // the next sync frame brings the held key along
  await body(B.page, hello).waitFor({ timeout: SLOW });
  assert.equal(await B.page.getByTestId("undecryptable").count(), 0);
  await body(A.page, reply).waitFor({ timeout: SLOW });

  // The server holds ciphertext only: Megolm events, in a room that says so.
  const chunk = await serverView(alice.accessToken, roomId);
  const encrypted = chunk.filter((e) => e.type === "m.room.encrypted");
  assert.equal(encrypted.length, 2);
  assert.ok(encrypted.every((e) => e.content.algorithm === "m.megolm.v1.aes-sha2" && typeof e.content.ciphertext === "string"));
  assert.equal(chunk.filter((e) => e.type === "m.room.message").length, 0);
  assert.ok(!JSON.stringify(chunk).includes(SEALED));
  const state = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`, alice.accessToken);
  assert.equal(state.algorithm, "m.megolm.v1.aes-sha2");

  // Files are sealed in the browser before upload: the other side downloads and decrypts them.
  const notes = `${SEALED}: the plan, in a file ${RUN}`;
  await A.page.getByTestId("file-input").setInputFiles({ name: "plan.txt", mimeType: "text/plain", buffer: Buffer.from(notes) });
  const file = B.page.getByTestId("message").filter({ hasText: "plan.txt" }).getByTestId("file");
  await file.waitFor({ timeout: SLOW });
  const [download] = await Promise.all([
    B.page.waitForEvent("download"),
    file.getByRole("button", { name: "Download plan.txt" }).click(),
  ]);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  assert.equal(Buffer.concat(chunks).toString(), notes);
  await A.page.getByTestId("file-input").setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: Buffer.from(PNG, "base64") });
  await B.page.getByTestId("message").filter({ hasText: "dot.png" }).getByTestId("image-preview").waitFor({ timeout: SLOW });
  await B.page.waitForFunction(() => {
    const img = document.querySelector("[data-testid=image-preview]");
    return img && img.complete && img.naturalWidth === 2;
  });
  const media = (await serverView(alice.accessToken, roomId)).filter((e) => e.type === "m.room.encrypted");
  assert.equal(media.length, 4, "the two files went as encrypted events");

  // A reload keeps the device and its keys (IndexedDB): the old messages are still readable.
  await B.page.reload();
  await B.page.getByTestId("dm-list").getByTestId("room-link").click();
  await body(B.page, hello).waitFor({ timeout: SLOW });
  await body(B.page, reply).waitFor({ timeout: SLOW });
  assert.equal((await session(B.page)).deviceId, bob.deviceId);
  assert.equal(await B.page.getByTestId("undecryptable").count(), 0);

  // Logging out deletes this device's key store and its passphrase.
  assert.ok((await cryptoStores(A.page)).length > 0, "the keys are kept in IndexedDB");
  await A.page.getByRole("button", { name: "Log out" }).click();
  await A.page.getByRole("button", { name: "Log in" }).waitFor();
  await until("the key store to be deleted", async () => (await cryptoStores(A.page)).length === 0);
  const left = await A.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("parley.crypto")));
  assert.deepEqual(left, []);
  await A.page.context().close();
  await B.page.context().close();
});

/** tests/jssdk/party.mjs as a child process; its JSON lines (marked "@@party ") collected. */
function party(mode, user) {
  const proc = spawn(process.execPath, [PARTY, mode, BASE, user.user_id, user.access_token, user.device_id], {
    cwd: fileURLToPath(new URL("../../tests/jssdk/", import.meta.url)), stdio: ["ignore", "pipe", "ignore"],
  });
  const lines = [];
  let exited = false;
  proc.on("exit", () => { exited = true; });
  createInterface({ input: proc.stdout }).on("line", (l) => {
    if (l.startsWith("@@party ")) lines.push(JSON.parse(l.slice("@@party ".length)));
  });
  return {
    proc,
    lines,
    wait: (key, pred = () => true) => until(`the js-sdk party's ${key}`, () => {
      if (exited) throw new Error(`the js-sdk party exited: ${JSON.stringify(lines)}`);
      return lines.find((l) => key in l && pred(l));
    }, 240_000),
  };
}

test("the web client and matrix-js-sdk exchange encrypted messages in a direct message", async () => {
  const js = await registerViaApi(`ejs${RUN}`);
  const echo = party("echo", js);
  try {
    await echo.wait("ready");
    const C = await newPage();
    await registerInUi(C.page, `ec${RUN}`);
    await keysPublished(C.page);
    await startDirect(C.page, js.user_id);
    const roomId = await C.page.getByTestId("dm-list").getByTestId("room-link").getAttribute("data-room-id");
    await echo.wait("joined", (l) => l.joined === roomId);
    const text = `${SEALED}: from the browser to js ${RUN}`;
    await send(C.page, text);
    const heard = await echo.wait("received", (l) => l.received === text);
    assert.equal(heard.encrypted, true);
    assert.equal(heard.room, roomId);
    // The js-sdk's answer, encrypted by it, decrypted here.
    await body(C.page, `echo: ${text}`).waitFor({ timeout: SLOW });
    const chunk = await serverView(js.access_token, roomId);
    assert.deepEqual(chunk.filter((e) => e.type === "m.room.message"), []);
    assert.equal(chunk.filter((e) => e.type === "m.room.encrypted").length, 2);
    await C.page.context().close();
  } finally {
    echo.proc.kill();
  }
});

test("nothing ran that should not have (crypto pages)", () => {
  for (const seen of watched) assertClean(seen);
});
