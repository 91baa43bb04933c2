// Figures for web/docs/measurements.md, against a running Parley serving this build:
//   PARLEY_URL=http://127.0.0.1:8008 node scripts/measure.mjs [messages=10000]
// - time from navigation to the channel list and to the first message on screen (a logged-in
//   reload, median of 5);
// - a channel of N messages (sent through the API, 20 at a time), loaded whole by scrolling up
//   through /messages, then scrolled from the start to the end: frame times while scrolling and
//   the most message elements the page held.
import { api, launch, newPage, PASSWORD, registerInUi, registerViaApi, room, RUN } from "../e2e/lib.mjs";

const N = Number(process.argv[2] ?? 10_000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

const browser = await launch();
const { page } = await newPage(browser);
await registerInUi(page, `m${RUN}`);
const poster = await registerViaApi(`mp${RUN}`);
const { room_id: roomId } = await api("POST", "/_matrix/client/v3/createRoom", poster.access_token,
  { name: `measure-${RUN}`, preset: "public_chat" });
let t = Date.now();
for (let i = 0; i < N; i += 20) {
  await Promise.all(Array.from({ length: Math.min(20, N - i) }, (_, j) => api("PUT",
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/m${i + j}`, poster.access_token,
    { msgtype: "m.text", body: `message ${i + j}${(i + j) % 5 === 0 ? "\nwith a second line" : ""}` })));
}
console.log(`sent ${N} messages in ${((Date.now() - t) / 1000).toFixed(1)} s`);
// The browser's access token may have expired while sending: join with a fresh login.
const fresh = await api("POST", "/_matrix/client/v3/login", undefined,
  { type: "m.login.password", identifier: { type: "m.id.user", user: `m${RUN}` }, password: PASSWORD });
await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, fresh.access_token, {});
await room(page, `measure-${RUN}`).click();
await page.getByTestId("message").first().waitFor();

const toList = [];
const toMessage = [];
for (let i = 0; i < 5; i++) {
  await page.reload();
  const r = await page.evaluate(() => new Promise((resolve) => {
    const out = {};
    const check = () => {
      const now = performance.now();
      if (!out.list && document.querySelector("[data-testid=room-link]")) out.list = now;
      if (!out.message && document.querySelector("[data-testid=message]")) out.message = now;
      if (out.list && out.message) resolve(out);
      else requestAnimationFrame(check);
    };
    check();
  }));
  toList.push(r.list);
  toMessage.push(r.message);
}
console.log(`navigation to channel list: median ${median(toList).toFixed(0)} ms; to first message: median ${median(toMessage).toFixed(0)} ms`);

// Load the whole channel by scrolling up.
t = Date.now();
await page.getByTestId("timeline").hover();
while ((await page.getByTestId("history-start").count()) === 0) {
  await page.evaluate(() => { document.querySelector("[data-testid=timeline]").scrollTop = 0; });
  await page.waitForFunction(() => document.querySelector("[data-testid=timeline]").scrollTop > 0
    || document.querySelector("[data-testid=history-start]"), undefined, { timeout: 60_000 });
}
const rows = Number(await page.getByTestId("timeline").getAttribute("data-rows"));
console.log(`loaded ${rows} rows through /messages in ${((Date.now() - t) / 1000).toFixed(1)} s`);

// Scroll from the start to the end, 400 px a frame, recording frame times and DOM size.
const r = await page.evaluate(() => new Promise((resolve) => {
  const el = document.querySelector("[data-testid=timeline]");
  el.scrollTop = 0;
  const frames = [];
  let most = 0;
  let last = performance.now();
  const step = (now) => {
    frames.push(now - last);
    last = now;
    most = Math.max(most, document.querySelectorAll("[data-testid=message]").length);
    const before = el.scrollTop;
    el.scrollTop += 400;
    if (el.scrollTop === before) resolve({ frames, most });
    else requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}));
const f = r.frames.slice(1);
console.log(`scrolled ${f.length} frames: median ${median(f).toFixed(1)} ms, p95 ${pct(f, 0.95).toFixed(1)} ms, `
  + `max ${Math.max(...f).toFixed(1)} ms; at most ${r.most} message elements in the page`);
await browser.close();
