"""Identifier grammar (appendices §Identifier Grammar) against a corpus of valid and invalid IDs.

The invalid corpus is built around the classic slips: a trailing newline slipping past `re.match`
with `$`, non-ASCII digits passing `str.isdigit`, lone surrogates that cannot be encoded."""

from __future__ import annotations

import pytest

from homeserver.protocol.ids import (
    is_valid_event_id,
    is_valid_localpart,
    is_valid_room_alias,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
)
from homeserver.protocol.push_rules import _glob

GOOD_SERVERS = [
    "example.com", "example.com:8448", "localhost", "localhost:1", "matrix.org:65535", "1.2.3.4",
    "1.2.3.4:1234", "[1234:5678::abcd]", "[1234:5678::abcd]:5678", "[::1]", "a-b.c", "xn--bcher-kva.example",
    "0123456789abcdef.example",
]
BAD_SERVERS = [
    "", "example.com\n", "\nexample.com", "example.com:8448\n", "exa mple.com", "example.com:",
    "example.com:65536", "example.com:123456", "example.com:1\n", "example.com:٣", "example.com:²",
    "[1234:5678::abcd", "[1234:5678::abcd]:", "[1234:5678::abcd]x", "[1234::abcd]\n", "1.2.3", "1.2.3.4.5",
    "١.٢.٣.٤", "exämple.com", "example.com/", "a" * 256, "example.com:80:80", "[::1]:\n",
    "example_com",
]


@pytest.mark.parametrize("name", GOOD_SERVERS)
def test_good_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize("name", BAD_SERVERS)
def test_bad_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


GOOD_USERS = [
    "@alice:example.com", "@a:b", "@alice.b=c/d+e-f_g:example.com:8448", "@0:1.2.3.4", "@x:[::1]:80",
    # Historical localparts: anything but ':' and NUL.
    "@Alice:example.com", "@al ice:example.com", "@☃:example.com", "@a!b#c:example.com",
    "@" + "a" * 240 + ":example.com",
]
BAD_USERS = [
    "alice:example.com", "@alice", "@:example.com", "@alice:", "@alice:example.com\n", "@alice:exa\nmple.com",
    "@al\x00ice:example.com", "@alice:example.com:", "@alice:example.com:99999", "@alice:example.com:٣",
    "@" + "a" * 250 + ":example.com", "@\ud800:example.com", "#alice:example.com", "@alice:exa mple.com",
]


@pytest.mark.parametrize("uid", GOOD_USERS)
def test_good_user_ids(uid: str) -> None:
    assert is_valid_user_id(uid)


@pytest.mark.parametrize("uid", BAD_USERS)
def test_bad_user_ids(uid: str) -> None:
    assert not is_valid_user_id(uid)


@pytest.mark.parametrize("local", ["alice", "a.b_c=d-e/f+g", "0123", "x" * 200])
def test_good_new_localparts(local: str) -> None:
    assert is_valid_localpart(local)


@pytest.mark.parametrize("local", ["", "Alice", "alice\n", "\nalice", "al ice", "al:ice", "ålice", "alice!",
                                   "alice\x00"])
def test_bad_new_localparts(local: str) -> None:
    assert not is_valid_localpart(local)


@pytest.mark.parametrize("alias", ["#room:example.com", "#a:b:1", "#Room With Space:example.com", "#☃:x.y"])
def test_good_aliases(alias: str) -> None:
    assert is_valid_room_alias(alias)


@pytest.mark.parametrize("alias", ["#room:example.com\n", "#room", "#:example.com", "room:example.com",
                                   "#room:example.com:", "#r\x00:example.com", "#" + "r" * 255 + ":x"])
def test_bad_aliases(alias: str) -> None:
    assert not is_valid_room_alias(alias)


V12_ROOM = "!" + "A" * 42 + "_"


@pytest.mark.parametrize("room", ["!abc:example.com", "!abc:example.com:8448", V12_ROOM])
def test_good_room_ids(room: str) -> None:
    assert is_valid_room_id(room)


@pytest.mark.parametrize("room", ["!abc:example.com\n", V12_ROOM + "\n", "!" + "A" * 42, "!" + "A" * 44,
                                  "abc:example.com", "!abc", "!:example.com", "!" + "A" * 42 + "="])
def test_bad_room_ids(room: str) -> None:
    assert not is_valid_room_id(room)


EVENT_HASH = "$" + "a" * 43


@pytest.mark.parametrize("eid", [EVENT_HASH, "$" + "Ab+/_-" * 8, "$legacy:example.com"])
def test_good_event_ids(eid: str) -> None:
    assert is_valid_event_id(eid)


@pytest.mark.parametrize("eid", [EVENT_HASH + "\n", "$" + "a" * 42, "$", "$abc", "$abc:exa mple.com",
                                  "$" + "a" * 300, "$\ud800" * 50, "$x:example.com\n"])
def test_bad_event_ids(eid: str) -> None:
    assert not is_valid_event_id(eid)


def test_push_glob_does_not_match_before_a_trailing_newline() -> None:
    assert _glob("m.notice", False).search("m.notice")
    assert not _glob("m.notice", False).search("m.notice\n")
    assert _glob("cake", True).search("i like cake")
    assert not _glob("cake", True).search("cakes")
