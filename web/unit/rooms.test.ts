import { beforeEach, describe, expect, it } from "vitest";
import { roomName, useRooms } from "@/lib/rooms";
import type { MatrixEvent, SyncResponse } from "@/lib/types";

const ME = "@me:hs";
const ROOM = "!r:hs";
let n = 0;

function msg(body: string, extra: Partial<MatrixEvent> = {}): MatrixEvent {
  n += 1;
  return { event_id: `$e${n}`, type: "m.room.message", sender: "@bob:hs", origin_server_ts: 1000 + n,
    content: { msgtype: "m.text", body }, ...extra };
}

function state(type: string, content: Record<string, unknown>, stateKey = ""): MatrixEvent {
  n += 1;
  return { event_id: `$s${n}`, type, sender: "@bob:hs", origin_server_ts: 1000 + n, content, state_key: stateKey };
}

function joinSync(timeline: MatrixEvent[], opts: { limited?: boolean; prev?: string; state?: MatrixEvent[]; unread?: number } = {}): SyncResponse {
  return {
    next_batch: `s${n}`,
    rooms: { join: { [ROOM]: {
      state: { events: opts.state ?? [] },
      timeline: { events: timeline, limited: opts.limited ?? false, prev_batch: opts.prev ?? "p0" },
      unread_notifications: { notification_count: opts.unread ?? 0, highlight_count: 0 },
    } } },
  };
}

const timeline = () => useRooms.getState().rooms[ROOM].timeline;
const bodies = () => timeline().map((e) => e.content.body);

describe("room store", () => {
  beforeEach(() => useRooms.getState().reset());

  it("folds state and timeline into a room summary", () => {
    useRooms.getState().applySync(joinSync([msg("hi")], {
      state: [state("m.room.name", { name: "general" }), state("m.room.topic", { topic: "all" }),
        state("m.room.member", { membership: "join", displayname: "Bob" }, "@bob:hs")],
      unread: 3, prev: "t5",
    }), ME);
    const room = useRooms.getState().rooms[ROOM];
    expect(room.name).toBe("general");
    expect(room.topic).toBe("all");
    expect(room.members["@bob:hs"]).toEqual({ membership: "join", displayname: "Bob" });
    expect(room.notificationCount).toBe(3);
    expect(room.prevBatch).toBe("t5");
    expect(bodies()).toEqual(["hi"]);
  });

  it("appends later batches without repeating events", () => {
    const a = msg("a");
    const s = useRooms.getState();
    s.applySync(joinSync([a]), ME);
    s.applySync(joinSync([a, msg("b")]), ME);
    expect(bodies()).toEqual(["a", "b"]);
  });

  it("starts afresh after a limited batch, keeping the new gap token", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([msg("old")]), ME);
    s.applySync(joinSync([msg("new")], { limited: true, prev: "t9" }), ME);
    expect(bodies()).toEqual(["new"]);
    expect(useRooms.getState().rooms[ROOM].prevBatch).toBe("t9");
  });

  it("replaces a local echo by the event the server sends back", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([]), ME);
    s.addEcho(ROOM, { event_id: "~t1", type: "m.room.message", sender: ME, origin_server_ts: 1, content: { body: "mine" }, pending: true });
    expect(timeline()[0].pending).toBe(true);
    s.applySync(joinSync([msg("mine", { event_id: "$real", sender: ME, unsigned: { transaction_id: "t1" } })]), ME);
    expect(timeline().map((e) => e.event_id)).toEqual(["$real"]);
    // The send's answer arriving after the sync changes nothing.
    s.confirmEcho(ROOM, "t1", "$real");
    expect(timeline().map((e) => e.event_id)).toEqual(["$real"]);
  });

  it("confirms an echo before the sync and does not duplicate it later", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([]), ME);
    s.addEcho(ROOM, { event_id: "~t2", type: "m.room.message", sender: ME, origin_server_ts: 1, content: { body: "x" }, pending: true });
    s.confirmEcho(ROOM, "t2", "$x");
    expect(timeline()).toMatchObject([{ event_id: "$x", pending: false }]);
    s.applySync(joinSync([msg("x", { event_id: "$x", sender: ME, unsigned: { transaction_id: "t2" } })]), ME);
    expect(timeline().map((e) => e.event_id)).toEqual(["$x"]);
  });

  it("marks a failed send", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([]), ME);
    s.addEcho(ROOM, { event_id: "~t3", type: "m.room.message", sender: ME, origin_server_ts: 1, content: { body: "x" }, pending: true });
    s.failEcho(ROOM, "t3");
    expect(timeline()[0].failed).toBe(true);
  });

  it("puts older pages before the timeline, oldest first, skipping known events", () => {
    const s = useRooms.getState();
    const c = msg("c");
    s.applySync(joinSync([c]), ME);
    const a = msg("a");
    const b = msg("b");
    s.prependHistory(ROOM, [c, b, a], "t1"); // /messages dir=b: newest first
    expect(bodies()).toEqual(["a", "b", "c"]);
    expect(useRooms.getState().rooms[ROOM].prevBatch).toBe("t1");
    s.prependHistory(ROOM, [], null);
    expect(useRooms.getState().rooms[ROOM].prevBatch).toBeNull();
  });

  it("keeps the unread count of the open room at zero", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([msg("a")], { unread: 2 }), ME);
    s.select(ROOM);
    expect(useRooms.getState().rooms[ROOM].notificationCount).toBe(0);
    s.applySync(joinSync([msg("b")], { unread: 3 }), ME);
    expect(useRooms.getState().rooms[ROOM].notificationCount).toBe(0);
  });

  it("reads invites, direct rooms and leaves", () => {
    const s = useRooms.getState();
    s.applySync({
      next_batch: "s1",
      rooms: { invite: { "!dm:hs": { invite_state: { events: [
        { ...state("m.room.member", { membership: "invite", is_direct: true }, ME), sender: "@ann:hs" },
      ] } } } },
      account_data: { events: [{ type: "m.direct", content: { "@ann:hs": ["!dm:hs"], "@bad:hs": "nope" } }] },
    }, ME);
    const dm = useRooms.getState().rooms["!dm:hs"];
    expect(dm).toMatchObject({ membership: "invite", inviter: "@ann:hs", directInvite: true });
    expect(useRooms.getState().direct).toEqual({ "!dm:hs": "@ann:hs" });
    s.select("!dm:hs");
    s.applySync({ next_batch: "s2", rooms: { leave: { "!dm:hs": {} } } }, ME);
    expect(useRooms.getState().rooms["!dm:hs"]).toBeUndefined();
    expect(useRooms.getState().selected).toBeNull();
  });

  it("names rooms by name, alias, then the other person", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([], { state: [
      state("m.room.member", { membership: "join" }, ME),
      state("m.room.member", { membership: "join", displayname: "Bobby" }, "@bob:hs"),
    ] }), ME);
    const room = useRooms.getState().rooms[ROOM];
    expect(roomName(room, ME)).toBe("Bobby");
    expect(roomName({ ...room, alias: "#a:hs" }, ME)).toBe("#a:hs");
    expect(roomName({ ...room, name: "N", alias: "#a:hs" }, ME)).toBe("N");
    expect(roomName({ ...room, members: {} }, ME)).toBe("Empty room");
  });
  it("applies a redaction to the event it names (in content from room version 11, top-level before)", () => {
    const a = msg("a");
    const b = msg("b");
    const s = useRooms.getState();
    s.applySync(joinSync([a, b]), ME);
    s.applySync(joinSync([msg("", { type: "m.room.redaction", content: { redacts: a.event_id } }),
      msg("", { type: "m.room.redaction", content: {}, redacts: b.event_id })]), ME);
    const [ra, rb] = timeline();
    expect(ra.content).toEqual({});
    expect(ra.unsigned?.redacted_because).toBeTruthy();
    expect(rb.content).toEqual({});
  });

  it("keeps who else is typing from m.typing, without me", () => {
    const s = useRooms.getState();
    const sync = joinSync([]);
    sync.rooms!.join![ROOM].ephemeral = { events: [{ type: "m.typing", content: { user_ids: ["@bob:hs", ME] } }] };
    s.applySync(sync, ME);
    expect(useRooms.getState().rooms[ROOM].typing).toEqual(["@bob:hs"]);
    const done = joinSync([]);
    done.rooms!.join![ROOM].ephemeral = { events: [{ type: "m.typing", content: { user_ids: [] } }] };
    s.applySync(done, ME);
    expect(useRooms.getState().rooms[ROOM].typing).toEqual([]);
  });

  it("adds a thread's fetched replies once, beside the timeline", () => {
    const s = useRooms.getState();
    const a = msg("a");
    s.applySync(joinSync([a]), ME);
    const r = msg("r");
    s.addRelated(ROOM, [r, a]);
    s.addRelated(ROOM, [r]);
    expect(useRooms.getState().rooms[ROOM].related?.map((e) => e.event_id)).toEqual([r.event_id]);
    expect(bodies()).toEqual(["a"]);
  });
  it("keeps a space's children from m.space.child, dropping one whose via is emptied", () => {
    const s = useRooms.getState();
    s.applySync(joinSync([state("m.room.create", { type: "m.space" }), state("m.space.child", { via: ["hs"] }, "!a:hs"),
      state("m.space.child", { via: ["hs"] }, "!b:hs")]), ME);
    expect(useRooms.getState().rooms[ROOM].roomType).toBe("m.space");
    expect(useRooms.getState().rooms[ROOM].children).toEqual(["!a:hs", "!b:hs"]);
    s.applySync(joinSync([state("m.space.child", {}, "!a:hs")]), ME);
    expect(useRooms.getState().rooms[ROOM].children).toEqual(["!b:hs"]);
  });
});
