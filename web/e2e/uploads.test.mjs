// Files in a channel against a real Parley: an image picked with the attach button (progress bar
// while it goes, then an inline preview for the other person, fetched as authenticated media), a
// file dropped onto the channel and downloaded by the other person, one pasted into the composer,
// and a hostile file name shown as text.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertClean, createChannel, launch, message, newPage, registerInUi, RUN } from "./lib.mjs";

let browser;
let A;
let B;
const channel = `files-${RUN}`;

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  B = await newPage(browser);
  await registerInUi(A.page, `fay${RUN}`);
  await registerInUi(B.page, `gus${RUN}`);
  await createChannel(A.page, channel, "");
  await B.page.getByRole("button", { name: "Browse channels" }).click();
  await B.page.getByTestId("public-room").filter({ hasText: channel }).getByRole("button", { name: "Join" }).click();
  await B.page.getByTestId("room-name").filter({ hasText: channel }).waitFor();
});

after(async () => {
  await browser?.close();
});

/** A PNG drawn in the page: width x height, with noise so it does not compress to nothing. */
async function png(page, width, height) {
  const b64 = await page.evaluate(([w, h]) => {
    const c = document.createElement("canvas");
    c.width = w;
    c.height = h;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 7919) % 251;
    ctx.putImageData(img, 0, 0);
    return c.toDataURL("image/png").split(",")[1];
  }, [width, height]);
  return Buffer.from(b64, "base64");
}

/** A DataTransfer holding one text file, made in the page. */
function dataTransfer(page, name, text) {
  return page.evaluateHandle(([n, t]) => {
    const dt = new DataTransfer();
    dt.items.add(new File([t], n, { type: "text/plain" }));
    return dt;
  }, [name, text]);
}

test("an image: a progress bar while it uploads, then an inline preview on the other side", async () => {
  const image = await png(A.page, 640, 480);
  // A slow uplink, so the progress bar has time to be seen moving.
  const cdp = await A.context.newCDPSession(A.page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions",
    { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: Math.ceil(image.length / 3) });
  await A.page.getByTestId("file-input").setInputFiles({ name: "chart.png", mimeType: "image/png", buffer: image });
  const bar = A.page.getByTestId("upload-progress");
  await bar.waitFor();
  await A.page.waitForFunction(() => {
    const p = document.querySelector("[data-testid=upload-progress]");
    return p && p.value > 0 && p.value < 1;
  });
  await bar.waitFor({ state: "detached", timeout: 30_000 });
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  const preview = message(B.page, "chart.png").getByTestId("image-preview");
  await preview.waitFor();
  await B.page.waitForFunction(() => {
    const img = document.querySelector("[data-testid=image-preview]");
    return img && img.complete && img.naturalWidth > 0;
  });
  assert.match(await preview.getAttribute("src"), /^blob:/);
  assert.equal(await preview.getAttribute("alt"), "chart.png");
  const event = await B.page.evaluate(() => document.querySelector("[data-testid=image-preview]").closest("[data-testid=message]").dataset.eventId);
  assert.ok(event.startsWith("$"));
});

test("a file dropped onto the channel, downloaded by the other person", async () => {
  const dt = await dataTransfer(A.page, "notes.txt", "meeting notes: ship on thursday");
  await A.page.getByTestId("drop-zone").dispatchEvent("dragover", { dataTransfer: dt });
  await A.page.getByText(`Drop files to send them to #${channel}`).waitFor();
  await A.page.getByTestId("drop-zone").dispatchEvent("drop", { dataTransfer: dt });
  const file = message(B.page, "notes.txt").getByTestId("file");
  await file.waitFor();
  const [download] = await Promise.all([
    B.page.waitForEvent("download"),
    file.getByRole("button", { name: "Download notes.txt" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "notes.txt");
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  assert.equal(Buffer.concat(chunks).toString(), "meeting notes: ship on thursday");
});

test("a file pasted into the composer; a hostile file name is only text", async () => {
  const hostile = `<img src=x onerror="window.__xss=1;alert(1)">.txt`;
  const dt = await dataTransfer(A.page, hostile, "x");
  await A.page.getByTestId("composer").evaluate((el, d) => {
    el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: d, bubbles: true, cancelable: true }));
  }, dt);
  const name = B.page.getByTestId("file-name").filter({ hasText: hostile });
  await name.waitFor();
  assert.equal(await name.textContent(), hostile);
  assert.equal(await B.page.evaluate(() => window.__xss ?? null), null);
  assert.equal(await B.page.locator("[data-testid=timeline] img:not([data-testid=image-preview])").count(), 0);
});

test("nothing ran that should not have", () => {
  assertClean(A.seen);
  assertClean(B.seen);
});
