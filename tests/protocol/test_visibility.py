"""History visibility of single events: a table of (setting, membership history, position) and
properties over random room histories (Client-Server API, "History visibility")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.protocol.visibility import (
    EventFacts,
    effective_visibility,
    visible_to_server,
    visible_to_user,
)

ME = "@me:hs"


def history(*steps: str) -> list[EventFacts]:
    """A linear room: "hv:<setting>", "me:<membership>" (my member events) or "msg"."""
    hv: Any = None
    mem: Any = None
    out = []
    for step in steps:
        kind, _, value = step.partition(":")
        if kind == "hv":
            prev = {"history_visibility": hv} if hv is not None else None
            hv = value
            out.append(EventFacts("m.room.history_visibility", "", {"history_visibility": value},
                                  prev, hv, mem))
        elif kind == "me":
            prev = {"membership": mem} if mem is not None else None
            mem = value
            out.append(EventFacts("m.room.member", ME, {"membership": value}, prev, hv, mem))
        else:
            out.append(EventFacts("m.room.message", None, {"body": "x"}, None, hv, mem))
    return out


def visible(steps: tuple[str, ...]) -> list[bool]:
    evs = history(*steps)
    joins = [i for i, s in enumerate(steps) if s == "me:join"]
    return [visible_to_user(e, ME, any(j > i for j in joins)) for i, e in enumerate(evs)]


# Each row: the room's history, and for every event whether I may see it.
TABLE = [
    # joined: only while I am joined (my own join included)
    (("hv:joined", "msg", "me:invite", "msg", "me:join", "msg", "me:leave", "msg"),
     [False, False, False, False, True, True, True, False]),
    # invited: from my invite on (events between invite and join included)
    (("hv:invited", "msg", "me:invite", "msg", "me:join", "msg", "me:leave", "msg"),
     [False, False, True, True, True, True, True, False]),
    # shared: everything before my (last) join, nothing after I left
    (("hv:shared", "msg", "me:invite", "msg", "me:join", "msg", "me:leave", "msg"),
     [True, True, True, True, True, True, True, False]),
    # world_readable: everything
    (("hv:world_readable", "msg", "me:join", "me:leave", "msg"), [True] * 5),
    # shared but never joined (a rejected invite): nothing but my own invite/leave pair
    (("hv:shared", "msg", "me:invite", "msg", "me:leave", "msg"),
     [False, False, False, False, True, False]),
    # invited, invite rejected: the window between invite and rejection only
    (("hv:invited", "msg", "me:invite", "msg", "me:leave", "msg"),
     [False, False, True, True, True, False]),
    # banned without ever joining: nothing (not even the earlier shared history)
    (("hv:shared", "msg", "me:ban", "msg"), [False, False, False, False]),
    # the setting at each event decides, not today's: joined-only history stays hidden
    (("hv:joined", "msg", "hv:shared", "msg", "me:join", "msg"),
     [False, False, True, True, True, True]),
    # ... and shared history stays visible after the room turns joined-only
    (("hv:shared", "msg", "hv:joined", "msg", "me:join", "msg"),
     [True, True, True, False, True, True]),
    # leave and rejoin under joined: the gap stays hidden
    (("hv:joined", "me:join", "msg", "me:leave", "msg", "me:join", "msg"),
     [False, True, True, True, False, True, True]),
    # no history_visibility event at all means shared
    (("msg", "me:join", "msg"), [True, True, True]),
]


@pytest.mark.parametrize("steps,expected", TABLE, ids=[" ".join(r[0]) for r in TABLE])
def test_visibility_table(steps: tuple[str, ...], expected: list[bool]) -> None:
    assert visible(steps) == expected


def test_unknown_setting_is_shared() -> None:
    assert effective_visibility("bogus") == "shared"
    assert effective_visibility(None) == "shared"
    assert effective_visibility(["joined"]) == "shared"


def test_server_visibility() -> None:
    assert visible_to_server("shared", [])
    assert visible_to_server("world_readable", ["leave"])
    assert visible_to_server("invited", ["invite"])
    assert not visible_to_server("invited", ["leave", "ban"])
    assert visible_to_server("joined", ["leave", "join"])
    assert not visible_to_server("joined", ["invite"])


STEP = st.sampled_from([
    "msg", "msg", "msg", "me:join", "me:leave", "me:invite", "me:ban",
    "hv:joined", "hv:invited", "hv:shared",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=25))
def test_never_outside_membership_window(steps: list[str]) -> None:
    """Without world_readable, a message is only ever visible to a user who was joined at it,
    invited at it under `invited`, or joined later under `shared`."""
    evs = history(*steps)
    seen = visible(tuple(steps))
    for i, (ev, ok) in enumerate(zip(evs, seen)):
        if ev.type != "m.room.message" or not ok:
            continue
        hv = effective_visibility(ev.visibility_at_event)
        mem = ev.membership_at_event
        joined_later = "me:join" in steps[i + 1:]
        assert mem == "join" or (hv == "invited" and mem == "invite") or (hv == "shared" and joined_later)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=25))
def test_strangers_see_nothing(steps: list[str]) -> None:
    """A user with no membership events never sees a message unless it is world-readable."""
    others = tuple(s for s in steps if not s.startswith("me:")) + ("msg",)
    assert not any(visible(others))
