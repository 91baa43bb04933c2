// Figures for the end-to-end encryption in web/docs/measurements.md, against a running Parley
// serving this build:   PARLEY_URL=http://127.0.0.1:8008 node scripts/measure-crypto.mjs
// - what the crypto adds to the download: the lazily loaded chunk and WebAssembly (gzip -9), as
//   found in out/ (the chunk is the one that loads the .wasm);
// - on a logged-in reload with an encrypted DM open (median of 5): time from navigation to the
//   first message on screen (still sealed), to the WebAssembly fetched, and to the message
//   decrypted on screen.
import { readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { launch, newPage, registerInUi, RUN, send, session } from "../e2e/lib.mjs";

const out = new URL("../out/_next/static/", import.meta.url);
const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const wasm = readdirSync(new URL("media/", out)).find((f) => f.endsWith(".wasm"));
const chunks = readdirSync(new URL("chunks/", out)).filter((f) => f.endsWith(".js"))
  .filter((f) => /initAsync|matrix_sdk_crypto_wasm_bg/.test(readFileSync(new URL(`chunks/${f}`, out), "utf8")));
const wasmPath = new URL(`media/${wasm}`, out);
console.log(`WebAssembly ${wasm}: ${kb(readFileSync(wasmPath).length)} raw, ${kb(gz(wasmPath))} gzip`);
for (const c of chunks) console.log(`lazy chunk ${c}: ${kb(gz(new URL(`chunks/${c}`, out)))} gzip`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const browser = await launch();
const A = await newPage(browser);
const B = await newPage(browser);
await registerInUi(A.page, `ma${RUN}`);
await registerInUi(B.page, `mb${RUN}`);
const bob = await session(B.page);
await A.page.getByRole("button", { name: "Start a direct message" }).click();
await A.page.getByLabel("User ID").fill(bob.userId);
await A.page.getByRole("button", { name: "Start", exact: true }).click();
await A.page.getByTestId("encrypted-room").waitFor();
await B.page.getByTestId("invite").getByRole("button", { name: "Join" }).click();
await B.page.getByTestId("encrypted-room").waitFor();
const text = `measured ${RUN}`;
await send(A.page, text);
await B.page.getByTestId("body").filter({ hasText: text }).waitFor({ timeout: 120_000 });

const rows = [];
for (let i = 0; i < 5; i++) {
  let wasmDone = null;
  const onDone = (req) => { if (req.url().endsWith(".wasm")) wasmDone = Date.now(); };
  B.page.on("requestfinished", onDone);
  const t0 = Date.now();
  await B.page.reload();
  await B.page.getByTestId("message").first().waitFor({ timeout: 120_000 });
  const first = Date.now() - t0;
  await B.page.getByTestId("body").filter({ hasText: text }).waitFor({ timeout: 120_000 });
  const clear = Date.now() - t0;
  B.page.off("requestfinished", onDone);
  rows.push({ first, wasm: wasmDone ? wasmDone - t0 : NaN, clear });
}
console.log(`reload to first message on screen: median ${median(rows.map((r) => r.first))} ms`);
console.log(`reload to WebAssembly fetched: median ${median(rows.map((r) => r.wasm))} ms`);
console.log(`reload to the message decrypted on screen: median ${median(rows.map((r) => r.clear))} ms`);
await browser.close();
