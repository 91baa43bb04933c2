"""Server-side search, the pure parts: what is indexed, the query language in both dialects,
highlights, request validation and the next_batch token."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.search import (
    Batch,
    edit_target,
    edit_text,
    fts5_query,
    highlights,
    parse_batch,
    parse_query,
    parse_request,
    searchable,
    tsquery,
)

# (search term, FTS5 MATCH, to_tsquery)
QUERY_VECTORS = [
    ("martians and men", '"martians"* AND "and"* AND "men"*', "'martians':* & 'and':* & 'men':*"),
    ("Deploy", '"deploy"*', "'deploy':*"),
    ('"release train" friday', '"friday"* AND "release train"', "'friday':* & ('release' <-> 'train')"),
    ('"solo"', '"solo"*', "'solo':*"),
    ("it's a-ok; DROP TABLE x; --", '"it"* AND "s"* AND "a"* AND "ok"* AND "drop"* AND "table"* AND "x"*',
     "'it':* & 's':* & 'a':* & 'ok':* & 'drop':* & 'table':* & 'x':*"),
    ("café ÜBER", '"café"* AND "über"*', "'café':* & 'über':*"),
    ("dup dup DUP", '"dup"*', "'dup':*"),
    ('*:&|!() "" \'', "", ""),
]


@pytest.mark.parametrize(("term", "fts", "ts"), QUERY_VECTORS)
def test_query_renders_the_same_question_for_both_databases(term: str, fts: str, ts: str) -> None:
    q = parse_query(term)
    assert fts5_query(q) == fts
    assert tsquery(q) == ts
    assert q.empty == (fts == "")


def test_searchable_text_per_key() -> None:
    assert searchable("m.room.message", {"body": "hi there", "msgtype": "m.text"}) == ("content.body", "hi there")
    assert searchable("m.room.name", {"name": "Ops"}) == ("content.name", "Ops")
    assert searchable("m.room.topic", {"topic": "Incidents"}) == ("content.topic", "Incidents")
    assert searchable("m.room.encrypted", {"ciphertext": "AwgAEn...", "algorithm": "m.megolm.v1.aes-sha2"}) is None
    assert searchable("m.room.message", {"body": "   "}) is None
    assert searchable("m.room.message", {"body": 7}) is None
    assert searchable("m.room.message", "not an object") is None
    assert searchable("m.reaction", {"body": "x"}) is None
    edit = {"body": "* new", "m.new_content": {"body": "new"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}}
    assert searchable("m.room.message", edit) is None  # found through its target
    assert edit_target(edit) == "$orig" and edit_text(edit) == "new"
    assert edit_target({"m.relates_to": {"rel_type": "m.thread", "event_id": "$r"}}) is None
    assert edit_text({"m.new_content": {"body": ""}}) is None


def test_highlights_hold_terms_and_the_words_they_matched() -> None:
    q = parse_query('deploy "green light"')
    got = highlights(q, ["Deployment went fine, deploys are green", "We got the green light"])
    assert got[:3] == ["deploy", "green", "light"]
    assert "Deployment" in got and "deploys" in got
    assert "fine" not in got and "We" not in got


def _req(**room_events: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": "x", **room_events}}}


def test_request_defaults_and_limits() -> None:
    c = parse_request(_req())
    assert c is not None
    assert c.order_by == "rank" and c.limit == 10 and c.context is None and not c.include_state
    assert c.keys == ("content.body", "content.name", "content.topic")
    c = parse_request(_req(filter={"limit": 500}, event_context={"before_limit": 99},
                           groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
                           keys=["content.name"], order_by="recent", include_state=True))
    assert c is not None
    assert c.limit == 50 and c.context == (20, 5, False) and c.group_by == ("room_id", "sender")
    assert c.keys == ("content.name",) and c.order_by == "recent" and c.include_state
    assert parse_request({"search_categories": {}}) is None


BAD_REQUESTS: list[Any] = [
    {},
    {"search_categories": []},
    {"search_categories": {"room_events": []}},
    {"search_categories": {"room_events": {}}},
    _req(search_term=5),
    _req(search_term="x" * 1001),
    _req(keys=["content.sender"]),
    _req(keys="content.body"),
    _req(order_by="oldest"),
    _req(filter={"limit": -1}),
    _req(filter={"rooms": ["not a room"]}),
    _req(event_context={"before_limit": "5"}),
    _req(event_context={"after_limit": -1}),
    _req(event_context={"include_profile": 1}),
    _req(event_context=[]),
    _req(groupings={"group_by": [{"key": "type"}]}),
    _req(groupings={"group_by": {"key": "room_id"}}),
    _req(include_state="yes"),
]


@pytest.mark.parametrize("body", BAD_REQUESTS)
def test_bad_requests_are_400(body: Any) -> None:
    with pytest.raises(MatrixError) as e:
        parse_request(body)
    assert e.value.status == 400


def test_next_batch_round_trips_and_is_tied_to_its_search() -> None:
    c = parse_request(_req(order_by="recent"))
    assert c is not None
    for b in (Batch("recent", 41, "x"), Batch("recent", -7, "x", ("room_id", "!r:hs")),
              Batch("recent", 3, "x", ("sender", "@a:hs"))):
        assert parse_batch(b.encode(), c) == b
    other = parse_request(_req(search_term="y", order_by="recent"))
    rank = parse_request(_req())
    assert other is not None and rank is not None
    for token, crit in [(Batch("recent", 41, "x").encode(), other), (Batch("recent", 41, "x").encode(), rank),
                        (Batch("rank", -1, "x").encode(), rank), ("!!!", c), ("e30", c), ("WzFd", c),
                        (Batch("recent", 1, "x", ("room_id", "nope")).encode(), c),
                        (Batch("recent", 1, "x", ("sender", "!r:hs")).encode(), c)]:
        with pytest.raises(MatrixError) as e:
            parse_batch(token, crit)
        assert e.value.status == 400 and e.value.errcode == "M_INVALID_PARAM"
