import { describe, expect, it } from "vitest";
import { accountSettings, parseKeywords, roomLevel, type Ruleset } from "@/lib/notifications";
import { matchingCommands, parseCommand, type SlashCommand } from "@/lib/plugins";
import { memberSuggestions, mentionQuery } from "@/lib/mentions";
import type { RoomData } from "@/lib/types";

const base = (): Ruleset => ({
  override: [{ rule_id: ".m.rule.master", default: true, enabled: false, actions: [] },
    { rule_id: ".m.rule.is_user_mention", default: true, enabled: true, actions: ["notify"] }],
  content: [{ rule_id: ".m.rule.contains_user_name", default: true, enabled: true, pattern: "me", actions: ["notify"] }],
  room: [],
  underride: [{ rule_id: ".m.rule.message", default: true, enabled: true, actions: ["notify"] }],
});

describe("notification settings from push rules", () => {
  it("reads the account level: all, mentions, off", () => {
    const rs = base();
    expect(accountSettings(rs)).toEqual({ account: "all", keywords: [] });
    rs.underride![0].actions = [];
    expect(accountSettings(rs).account).toBe("mentions");
    rs.underride![0].actions = ["dont_notify"];
    expect(accountSettings(rs).account).toBe("mentions");
    rs.override![0].enabled = true;
    expect(accountSettings(rs).account).toBe("off");
  });

  it("lists the user's own enabled content rules as keywords, not the server's", () => {
    const rs = base();
    rs.content!.push({ rule_id: "deploy", default: false, enabled: true, pattern: "deploy", actions: ["notify"] },
      { rule_id: "old", default: false, enabled: false, pattern: "old", actions: ["notify"] });
    expect(accountSettings(rs).keywords).toEqual(["deploy"]);
  });

  it("reads a room's level; a muting override wins over a room rule", () => {
    const rs = base();
    expect(roomLevel(rs, "!r:hs")).toBe("default");
    rs.room!.push({ rule_id: "!r:hs", enabled: true, actions: ["notify"] });
    expect(roomLevel(rs, "!r:hs")).toBe("all");
    rs.room![0].actions = [];
    expect(roomLevel(rs, "!r:hs")).toBe("mentions");
    rs.override!.push({ rule_id: "!r:hs", enabled: true, actions: [] });
    expect(roomLevel(rs, "!r:hs")).toBe("mute");
    expect(roomLevel(rs, "!other:hs")).toBe("default");
  });

  it("parses a keyword field", () => {
    expect(parseKeywords(" deploy, outage ,, deploy ,")).toEqual(["deploy", "outage"]);
  });
});

describe("composer autocomplete", () => {
  const known: SlashCommand[] = [{ command: "poll", plugin: "poll" }, { command: "remind", plugin: "remind" }];

  it("matches commands while the name is typed, and parses known ones", () => {
    expect(matchingCommands("/po", known).map((c) => c.command)).toEqual(["poll"]);
    expect(matchingCommands("/", known)).toHaveLength(2);
    expect(matchingCommands("/poll ", known)).toEqual([]);
    expect(matchingCommands("hi /po", known)).toEqual([]);
    expect(parseCommand("/poll Lunch? | a | b", known)).toEqual({ command: "poll", args: "Lunch? | a | b" });
    expect(parseCommand("/poll", known)).toEqual({ command: "poll", args: "" });
    expect(parseCommand("/shrug", known)).toBeNull();
    expect(parseCommand("//poll", known)).toBeNull();
  });

  it("finds the @query before the caret and ranks members", () => {
    expect(mentionQuery("hi @al", 6)).toEqual({ start: 3, query: "al" });
    expect(mentionQuery("hi @al there", 12)).toBeNull();
    expect(mentionQuery("mail@al", 7)).toBeNull();
    const room = {
      members: {
        "@me:hs": { membership: "join" }, "@alice:hs": { membership: "join", displayname: "Alice" },
        "@sal:hs": { membership: "join", displayname: "Sally" }, "@al:hs": { membership: "leave" },
      },
    } as unknown as RoomData;
    expect(memberSuggestions(room, "@me:hs", "al").map((m) => m.userId)).toEqual(["@alice:hs", "@sal:hs"]);
    expect(memberSuggestions(room, "@me:hs", "").map((m) => m.userId)).toEqual(["@alice:hs", "@sal:hs"]);
  });
});
