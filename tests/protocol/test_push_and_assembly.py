"""Pure logic: push rule evaluation and sync state assembly."""

from __future__ import annotations

from homeserver.protocol.push_rules import (
    PushContext,
    default_ruleset,
    evaluate,
    is_highlight,
    is_notify,
    merged_ruleset,
)
from homeserver.sync.assembly import room_summary, state_for_room_section

ME = "@me:x"
CTX = PushContext(user_id=ME, display_name="Me Myself", member_count=5, sender_power=0,
                  notification_levels={"room": 50})


def msg(body: str, **content: object) -> dict:
    return {"type": "m.room.message", "sender": "@other:x", "room_id": "!r:x",
            "content": {"msgtype": "m.text", "body": body, **content}}


def test_default_rules() -> None:
    rules = default_ruleset(ME)
    assert is_notify(evaluate(rules, msg("hello"), CTX)) and not is_highlight(evaluate(rules, msg("hello"), CTX))
    mention = msg("hi", **{"m.mentions": {"user_ids": [ME]}})
    assert is_highlight(evaluate(rules, mention, CTX))
    assert is_highlight(evaluate(rules, msg("ping me please"), CTX))  # contains_user_name (localpart)
    assert evaluate(rules, msg("x", msgtype="m.notice"), CTX) == []
    assert evaluate(rules, {"type": "m.reaction", "sender": "@o:x", "content": {}}, CTX) == []
    edit = msg("* x", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}})
    assert evaluate(rules, edit, CTX) == []
    room_ping = msg("@room", **{"m.mentions": {"room": True}})
    assert not is_highlight(evaluate(rules, room_ping, CTX))  # sender below the room notification level
    strong = PushContext(ME, None, 5, 100, {"room": 50})
    assert is_highlight(evaluate(rules, room_ping, strong))
    one_to_one = PushContext(ME, None, 2, 0, {})
    assert {"set_tweak": "sound", "value": "default"} in evaluate(rules, msg("dm"), one_to_one)
    invite = {"type": "m.room.member", "state_key": ME, "sender": "@o:x", "content": {"membership": "invite"}}
    assert is_notify(evaluate(rules, invite, CTX))
    join = {"type": "m.room.member", "state_key": "@o:x", "sender": "@o:x", "content": {"membership": "join"}}
    assert evaluate(rules, join, CTX) == []


def test_user_rules_and_overrides() -> None:
    stored = {"rules": {"room": [{"rule_id": "!r:x", "enabled": True, "actions": []}]},
              "default_overrides": {"underride/.m.rule.message": {"enabled": False}}}
    rules = merged_ruleset(ME, stored)
    assert evaluate(rules, msg("muted room"), CTX) == []
    other_room = dict(msg("elsewhere"), room_id="!s:x")
    assert evaluate(rules, other_room, CTX) == []  # .m.rule.message disabled
    assert rules["override"][0]["rule_id"] == ".m.rule.master"
    master_on = merged_ruleset(ME, {"default_overrides": {"override/.m.rule.master": {"enabled": True}}})
    assert evaluate(master_on, msg("hi", **{"m.mentions": {"user_ids": [ME]}}), CTX) == []


def test_state_assembly() -> None:
    start = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$ma", ("m.room.member", "@b:x"): "$mb",
             ("m.room.name", ""): "$n2"}
    since = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$ma", ("m.room.name", ""): "$n1"}
    common = {"state_at_timeline_end": None, "lazy_members": None}
    full = state_for_room_section(full=True, state_at_since=None, state_at_timeline_start=start,
                                  timeline_event_ids=["$mb"], **common)
    assert set(full.values()) == {"$c", "$ma", "$n2"}  # timeline events are not repeated
    gap = state_for_room_section(full=False, state_at_since=since, state_at_timeline_start=start,
                                 timeline_event_ids=[], **common)
    assert set(gap.values()) == {"$mb", "$n2"}
    # A complete timeline (the caller passes the start state as `since`): nothing to add.
    none = state_for_room_section(full=False, state_at_since=start, state_at_timeline_start=start,
                                  timeline_event_ids=[], **common)
    assert none == {}
    lazy = state_for_room_section(full=True, state_at_since=None, state_at_timeline_start=start,
                                  timeline_event_ids=[], state_at_timeline_end=None, lazy_members={"@a:x"})
    assert set(lazy.values()) == {"$c", "$ma", "$n2"}


def test_state_left_out_of_a_filtered_timeline() -> None:
    """A state event inside the window that the timeline filter dropped still reaches `state`."""
    since = {("m.room.create", ""): "$c", ("m.room.name", ""): "$n1"}
    start = since  # the timeline's first (kept) message came before the rename
    end = {("m.room.create", ""): "$c", ("m.room.name", ""): "$n2"}
    out = state_for_room_section(full=False, state_at_since=since, state_at_timeline_start=start,
                                 state_at_timeline_end=end, timeline_event_ids=["$msg"], lazy_members=None)
    assert out == {("m.room.name", ""): "$n2"}
    # ... but not when the rename is in the timeline itself.
    out = state_for_room_section(full=False, state_at_since=since, state_at_timeline_start=start,
                                 state_at_timeline_end=end, timeline_event_ids=["$msg", "$n2"],
                                 lazy_members=None)
    assert out == {}


def test_lazy_members_in_a_gappy_sync() -> None:
    """Limited incremental sync with lazy loading: the senders' member events (even unchanged)
    and the members who joined or left in the gap; unchanged non-senders stay out."""
    since = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$ja", ("m.room.member", "@c:x"): "$jc",
             ("m.room.member", "@d:x"): "$jd"}
    start = {("m.room.create", ""): "$c", ("m.room.member", "@a:x"): "$ja", ("m.room.member", "@c:x"): "$lc",
             ("m.room.member", "@d:x"): "$jd", ("m.room.member", "@e:x"): "$je"}
    out = state_for_room_section(full=False, state_at_since=since, state_at_timeline_start=start,
                                 state_at_timeline_end=start, timeline_event_ids=["$m1"],
                                 lazy_members={"@a:x", "@me:x"})
    assert out == {("m.room.member", "@a:x"): "$ja", ("m.room.member", "@c:x"): "$lc",
                   ("m.room.member", "@e:x"): "$je"}


def test_room_summary_heroes() -> None:
    s = room_summary(3, 1, ["@me:x", "@b:x", "@a:x", "@c:x"], "@me:x", has_name=False)
    assert s == {"m.joined_member_count": 3, "m.invited_member_count": 1, "m.heroes": ["@a:x", "@b:x", "@c:x"]}
    assert "m.heroes" not in room_summary(3, 1, [], "@me:x", has_name=True)
