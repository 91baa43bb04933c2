// Working with messages already sent, two people in two browser contexts against a real Parley:
// edits (from the toolbar and with the up arrow), deletion, reactions, a thread in the side panel,
// "… is typing", and inviting someone to a private channel. Each change made by one is checked on
// the other's screen.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  api, assertClean, body, createChannel, launch, message, newPage, registerInUi, registerViaApi, room, RUN, send, session,
} from "./lib.mjs";

let browser;
let A;
let B;
const ann = `ann${RUN}`;
const ben = `ben${RUN}`;
const channel = `work-${RUN}`;

before(async () => {
  browser = await launch();
  A = await newPage(browser);
  B = await newPage(browser);
  await registerInUi(A.page, ann);
  await registerInUi(B.page, ben);
  await createChannel(A.page, channel, "");
  await B.page.getByRole("button", { name: "Browse channels" }).click();
  await B.page.getByTestId("public-room").filter({ hasText: channel }).getByRole("button", { name: "Join" }).click();
  await B.page.getByTestId("room-name").filter({ hasText: channel }).waitFor();
  await A.page.getByText(`${ben} joined`).waitFor();
});

after(async () => {
  await browser?.close();
});

/** The action toolbar of a message shows on hover (and on keyboard focus). */
async function action(page, text, name) {
  const m = message(page, text).last();
  await m.hover();
  await m.getByRole("button", { name }).click();
}

test("edit a message from its toolbar; the other person sees the new text, marked edited", async () => {
  await send(A.page, "teh first draft");
  await body(B.page, "teh first draft").waitFor();
  await action(A.page, "teh first draft", "Edit message");
  const box = A.page.getByTestId("edit-box");
  await box.fill("the first draft");
  await box.press("Enter");
  await body(B.page, "the first draft").waitFor();
  await message(B.page, "the first draft").getByTestId("edited").waitFor();
  await body(A.page, "the first draft").waitFor();
  assert.equal(await body(B.page, "teh first draft").count(), 0);
  // The edit is folded into its message, not shown as a message of its own.
  assert.equal(await B.page.getByTestId("message").filter({ hasText: "* the first draft" }).count(), 0);
});

test("up arrow in an empty composer edits the last own message; Escape cancels an edit", async () => {
  await send(A.page, "second thought");
  await body(B.page, "second thought").waitFor();
  await A.page.getByTestId("composer").press("ArrowUp");
  const box = A.page.getByTestId("edit-box");
  assert.equal(await box.inputValue(), "second thought");
  await box.press("Escape");
  await box.waitFor({ state: "detached" });
  await A.page.getByTestId("composer").press("ArrowUp");
  await box.fill("second thought, revised with **bold**");
  await box.press("Enter");
  const edited = message(B.page, "second thought, revised with bold");
  await edited.waitFor();
  assert.equal(await edited.locator("strong").textContent(), "bold");
  await edited.getByTestId("edited").waitFor();
});

test("delete an own message: both see the placeholder", async () => {
  await send(A.page, "a regrettable remark");
  await body(B.page, "a regrettable remark").waitFor();
  await action(A.page, "a regrettable remark", "Delete message");
  await body(B.page, "a regrettable remark").waitFor({ state: "detached" });
  await body(A.page, "a regrettable remark").waitFor({ state: "detached" });
  assert.ok(await B.page.getByTestId("deleted").count() >= 1);
  // Only one's own messages offer edit and delete.
  const theirs = message(B.page, "second thought, revised");
  await theirs.hover();
  assert.equal(await theirs.getByRole("button", { name: "Edit message" }).count(), 0);
  assert.equal(await theirs.getByRole("button", { name: "Delete message" }).count(), 0);
});

test("reactions: add from the picker, join in, take back", async () => {
  await send(A.page, "ship it?");
  await body(B.page, "ship it?").waitFor();
  await action(B.page, "ship it?", "Add reaction");
  await B.page.getByTestId("emoji-picker").getByRole("button", { name: "React with rocket" }).click();
  const onA = message(A.page, "ship it?").getByTestId("reaction").filter({ hasText: "🚀" });
  await onA.getByTestId("reaction-count").filter({ hasText: /^1$/ }).waitFor();
  assert.equal(await onA.getAttribute("aria-pressed"), "false");
  await onA.click();
  await onA.getByTestId("reaction-count").filter({ hasText: /^2$/ }).waitFor();
  assert.equal(await onA.getAttribute("aria-pressed"), "true");
  const onB = message(B.page, "ship it?").getByTestId("reaction").filter({ hasText: "🚀" });
  await onB.getByTestId("reaction-count").filter({ hasText: /^2$/ }).waitFor();
  // Taking a reaction back (a redaction of it) lowers the count for both.
  await onB.click();
  await onA.getByTestId("reaction-count").filter({ hasText: /^1$/ }).waitFor();
  await onB.getByTestId("reaction-count").filter({ hasText: /^1$/ }).waitFor();
  assert.equal(await onB.getAttribute("aria-pressed"), "false");
});

test("a thread: replies go to the side panel, the channel shows a reply count", async () => {
  await send(A.page, "which day for the release?");
  await body(B.page, "which day for the release?").waitFor();
  await action(B.page, "which day for the release?", "Reply in thread");
  const panelB = B.page.getByTestId("thread-panel");
  await panelB.getByTestId("thread-composer").fill("thursday works for me");
  await panelB.getByTestId("thread-composer").press("Enter");
  await panelB.getByTestId("body").filter({ hasText: /^thursday works for me$/ }).waitFor();

  const summary = message(A.page, "which day for the release?").getByTestId("thread-summary");
  await summary.filter({ hasText: "1 reply" }).waitFor();
  // The reply lives in the thread, not in the channel's timeline.
  assert.equal(await A.page.getByTestId("timeline").getByTestId("body").filter({ hasText: "thursday works" }).count(), 0);
  await summary.click();
  const panelA = A.page.getByTestId("thread-panel");
  await panelA.getByTestId("body").filter({ hasText: /^thursday works for me$/ }).waitFor();
  await panelA.getByTestId("thread-composer").fill("thursday it is");
  await panelA.getByTestId("thread-composer").press("Enter");
  await panelB.getByTestId("body").filter({ hasText: /^thursday it is$/ }).waitFor();
  await message(B.page, "which day for the release?").getByTestId("thread-summary").filter({ hasText: "2 replies" }).waitFor();
  await panelA.getByRole("button", { name: "Close thread" }).click();
  await panelA.waitFor({ state: "detached" });
  await B.page.keyboard.press("Escape");
  await panelB.waitFor({ state: "detached" });
});

test("typing: the other person sees who is typing, and it clears when they stop", async () => {
  const line = A.page.getByTestId("typing");
  await B.page.getByTestId("composer").fill("I am writing something lon");
  await line.filter({ hasText: `${ben} is typing…` }).waitFor();
  await B.page.getByTestId("composer").fill("");
  await line.filter({ hasText: /^$/ }).waitFor();
  await B.page.getByTestId("composer").fill("now sending");
  await line.filter({ hasText: "is typing" }).waitFor();
  await B.page.getByTestId("composer").press("Enter");
  await body(A.page, "now sending").waitFor();
  await line.filter({ hasText: /^$/ }).waitFor();
  assert.equal(await B.page.getByTestId("typing").textContent(), "", "nobody sees themselves typing");
});

test("invite someone to a private channel from its header", async () => {
  const secret = `secret-${RUN}`;
  await createChannel(A.page, secret, "", { isPrivate: true });
  await A.page.getByRole("button", { name: "Invite", exact: true }).click();
  const dialog = A.page.getByRole("dialog", { name: `Invite people to #${secret}` });
  await dialog.getByLabel("User ID").fill("ben");
  await dialog.getByRole("button", { name: "Invite", exact: true }).click();
  await dialog.getByRole("alert").filter({ hasText: "full user ID" }).waitFor();
  const benId = await B.page.getByTestId("me").textContent();
  await dialog.getByLabel("User ID").fill(benId);
  await dialog.getByRole("button", { name: "Invite", exact: true }).click();
  await dialog.getByRole("status").filter({ hasText: `Invited ${benId}` }).waitFor();
  await A.page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });
  const invite = B.page.getByTestId("invite").filter({ hasText: secret });
  await invite.getByRole("button", { name: "Join" }).click();
  await B.page.getByTestId("room-name").filter({ hasText: secret }).waitFor();
  await A.page.getByText(`${ben} joined`).waitFor();
});

test("a long channel keeps only the rows near the viewport in the page, in order, down to its start", async () => {
  const N = 400;
  const cy = await registerViaApi(`cy${RUN}`);
  const { room_id: roomId } = await api("POST", "/_matrix/client/v3/createRoom", cy.access_token,
    { name: `long-${RUN}`, preset: "public_chat" });
  const put = (i) => api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/l${i}`,
    cy.access_token, { msgtype: "m.text", body: `line ${i}${i % 7 === 3 ? "\nwith a second line" : ""}` });
  for (let i = 0; i < N; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => put(i + j)));
  await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, (await session(A.page)).accessToken, {});
  await room(A.page, `long-${RUN}`).click();
  await body(A.page, `line ${N - 1}`).waitFor();
  const timeline = A.page.getByTestId("timeline");
  await timeline.hover();
  let most = 0;
  for (let i = 0; i < 200 && (await A.page.getByTestId("history-start").count()) === 0; i++) {
    await A.page.mouse.wheel(0, -3000);
    await A.page.waitForFunction(() => {
      const t = document.querySelector("[data-testid=timeline]");
      return t.scrollTop > 160 || document.querySelector("[data-testid=history-start]")
        || t.textContent.includes("Loading older");
    });
    most = Math.max(most, await A.page.getByTestId("message").count());
  }
  await A.page.getByTestId("history-start").waitFor();
  const top = async () => {
    await A.page.mouse.wheel(0, -100_000);
    await A.page.waitForFunction(() => document.querySelector("[data-testid=timeline]").scrollTop === 0);
  };
  await top();
  await body(A.page, "line 0").waitFor();
  assert.ok(Number(await timeline.getAttribute("data-rows")) >= N, "every message is in the timeline");
  assert.ok(most > 0 && most < 200, `the page held at most ${most} message elements`);
  const shown = (await A.page.getByTestId("body").allTextContents()).map((t) => /^line (\d+)/.exec(t)?.[1])
    .filter(Boolean).map(Number);
  // Sent 20 at a time in parallel: batches are in order, whatever the order inside one.
  const batches = shown.map((x) => Math.floor(x / 20));
  assert.deepEqual(batches, [...batches].sort((a, b) => a - b), "in order");
  assert.equal(new Set(shown).size, shown.length, "nothing repeated");
  assert.ok(shown.includes(0));
  // Back to the newest message at the bottom.
  await A.page.mouse.wheel(0, 1_000_000);
  await body(A.page, `line ${N - 1}`).waitFor();
  assert.equal(await body(A.page, "line 0").count(), 0, "the start left the page again");
  await room(A.page, channel).click();
});

test("nothing ran that should not have", () => {
  assertClean(A.seen);
  assertClean(B.seen);
});
