import { describe, expect, it } from "vitest";
import { aggregate, displayContent, isMainTimelineEvent, roomEvents } from "@/lib/relations";
import { typingLine } from "@/lib/messageActions";
import type { MatrixEvent } from "@/lib/types";

const ME = "@me:hs";
let n = 0;

function ev(sender: string, type: string, content: Record<string, unknown>, ts?: number): MatrixEvent {
  n += 1;
  return { event_id: `$r${n}`, type, sender, origin_server_ts: ts ?? 1000 + n, content };
}
const text = (sender: string, body: string) => ev(sender, "m.room.message", { msgtype: "m.text", body });
const edit = (sender: string, target: string, body: string, ts?: number) => ev(sender, "m.room.message", {
  msgtype: "m.text", body: `* ${body}`, "m.new_content": { msgtype: "m.text", body },
  "m.relates_to": { rel_type: "m.replace", event_id: target },
}, ts);
const reaction = (sender: string, target: string, key: string) =>
  ev(sender, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: target, key } });
const reply = (sender: string, root: string, body: string) => ev(sender, "m.room.message", {
  msgtype: "m.text", body, "m.relates_to": { rel_type: "m.thread", event_id: root },
});

describe("relations", () => {
  it("shows the newest edit by the original sender and ignores edits by others", () => {
    const m = text(ME, "teh");
    const e1 = edit(ME, m.event_id, "the", 5000);
    const e0 = edit(ME, m.event_id, "tha", 4000);
    const forged = edit("@eve:hs", m.event_id, "owned", 9000);
    const agg = aggregate([m, e1, e0, forged], ME);
    expect(displayContent(m, agg).body).toBe("the");
    expect([m, e1, e0, forged].filter(isMainTimelineEvent)).toEqual([m]);
  });

  it("counts one reaction per person and key, and knows mine", () => {
    const m = text("@bob:hs", "ship it");
    const mine = reaction(ME, m.event_id, "🚀");
    const agg = aggregate([m, reaction("@bob:hs", m.event_id, "🚀"), reaction("@bob:hs", m.event_id, "🚀"), mine,
      reaction("@bob:hs", m.event_id, "👍")], ME);
    const groups = agg.reactions.get(m.event_id) ?? [];
    expect(groups.map((g) => [g.key, g.senders.length])).toEqual([["🚀", 2], ["👍", 1]]);
    expect(groups[0].mine).toBe(mine.event_id);
    expect(groups[1].mine).toBeUndefined();
  });

  it("drops a redacted reaction (its content is gone)", () => {
    const m = text("@bob:hs", "x");
    const r = { ...reaction(ME, m.event_id, "👍"), content: {} };
    expect(aggregate([m, r], ME).reactions.get(m.event_id)).toBeUndefined();
  });

  it("collects thread replies in time order, also from fetched events outside the timeline", () => {
    const root = text("@bob:hs", "root");
    const late = reply(ME, root.event_id, "second");
    const early = { ...reply("@bob:hs", root.event_id, "first"), origin_server_ts: 10 };
    const agg = aggregate(roomEvents([root, late], [early, late]), ME);
    expect(agg.threads.get(root.event_id)?.map((e) => e.content.body)).toEqual(["first", "second"]);
    expect(isMainTimelineEvent(late)).toBe(false);
  });

  it("words the typing line", () => {
    expect(typingLine([])).toBeNull();
    expect(typingLine(["Ann"])).toBe("Ann is typing…");
    expect(typingLine(["Ann", "Ben"])).toBe("Ann and Ben are typing…");
    expect(typingLine(["Ann", "Ben", "Cy"])).toBe("Several people are typing…");
  });
});
