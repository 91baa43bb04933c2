"""The server ACL matcher (m.room.server_acl): the spec's order of checks, globs, ports, IP
literals and malformed content."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeserver.protocol.server_acl import (
    ServerAcl,
    glob_to_regex,
    host_without_port,
    is_ip_literal,
    server_allowed,
)

EVIL = {"allow": ["*"], "deny": ["evil.com", "*.evil.com"], "allow_ip_literals": False}


@pytest.mark.parametrize(("content", "server", "allowed"), [
    (None, "anything.example", True),  # no ACL in the room: allow
    (EVIL, "good.example", True),
    (EVIL, "evil.com", False),
    (EVIL, "evil.com:8448", False),  # the port is not considered
    (EVIL, "EVIL.com:1234", False),  # globs are case-insensitive
    (EVIL, "sub.evil.com", False),
    (EVIL, "notevil.com", True),  # `evil.com` matches the whole name only
    (EVIL, "evil.com.example", True),
    (EVIL, "1.2.3.4", False),
    (EVIL, "1.2.3.4:8448", False),
    (EVIL, "[::1]", False),
    (EVIL, "[2001:db8::1]:8448", False),
    ({"allow": ["*"]}, "1.2.3.4", True),  # allow_ip_literals defaults to true
    ({"allow": ["*"], "allow_ip_literals": "false"}, "1.2.3.4", True),  # not a boolean: true
    ({"allow": ["*"], "allow_ip_literals": 0}, "[::1]:80", True),
    ({}, "good.example", False),  # no allow list: everyone is denied
    ({"deny": []}, "good.example", False),
    ({"allow": "*"}, "good.example", False),  # not a list: empty
    ({"allow": [1, None, "good.*"]}, "good.example", True),  # non-strings ignored
    ({"allow": ["*.example"], "deny": ["bad.example"]}, "bad.example", False),  # deny before allow
    ({"allow": ["*.example"], "deny": ["bad.example"]}, "ok.example", True),
    ({"allow": ["*.example"]}, "example", False),
    ({"allow": ["ser?er.org"]}, "server.org", True),
    ({"allow": ["ser?er.org"]}, "serer.org", False),  # `?` is exactly one character
    ({"allow": ["ser?er.org"]}, "serveer.org", False),
    ({"allow": ["a.b"]}, "axb", False),  # `.` is literal, not a regex wildcard
    ({"allow": ["[::1]"]}, "[::1]:8448", True),
    ({"allow": ["*"], "deny": ["*"]}, "x.example", False),
    ("not an object", "x.example", False),
])
def test_acl_table(content: Any, server: str, allowed: bool) -> None:
    assert server_allowed(content, server) is allowed


@pytest.mark.parametrize(("name", "host"), [
    ("example.com", "example.com"), ("example.com:8448", "example.com"), ("1.2.3.4:5", "1.2.3.4"),
    ("[::1]", "[::1]"), ("[::1]:8448", "[::1]"), ("[2001:db8::1]", "[2001:db8::1]"),
])
def test_host_without_port(name: str, host: str) -> None:
    assert host_without_port(name) == host


@pytest.mark.parametrize(("host", "literal"), [
    ("1.2.3.4", True), ("[::1]", True), ("[2001:db8::1]", True), ("example.com", False),
    ("1.2.3", False), ("[example]", False), ("999.1.1.1", False),
])
def test_ip_literals(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)


@given(_host, st.integers(min_value=1, max_value=65535), st.lists(_host, max_size=4), st.lists(_host, max_size=4))
def test_port_never_matters(host: str, port: int, allow: list[str], deny: list[str]) -> None:
    content = {"allow": allow, "deny": deny}
    assert server_allowed(content, f"{host}:{port}") == server_allowed(content, host)


@given(_host, st.lists(_host, max_size=4))
def test_deny_wins_over_allow(host: str, others: list[str]) -> None:
    acl = ServerAcl.from_content({"allow": ["*", host, *others], "deny": [*others, host]})
    assert not acl.allows(host) and not acl.allows(host.upper())
    assert ServerAcl.from_content({"allow": ["*"], "deny": others}).allows(host) is (host not in others)


@given(st.text(max_size=20))
def test_a_glob_without_wildcards_matches_itself_only(text: str) -> None:
    pattern = glob_to_regex(text.replace("*", "").replace("?", ""))
    literal = text.replace("*", "").replace("?", "")
    assert pattern.fullmatch(literal)
    assert not pattern.fullmatch(literal + "x")
