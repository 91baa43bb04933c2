"""X-Matrix request signing and checking, without a network."""

from __future__ import annotations

import pytest

from federation.request_auth import (
    RequestAuthenticator,
    authorization_header,
    parse_x_matrix,
    request_json,
)
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import generate_signing_key, key_id, sign_json, verify_key_b64

KEY = generate_signing_key("k1")
NOW = 1_700_000_000_000


def test_parse_quoted_unquoted_and_escaped() -> None:
    h = parse_x_matrix('X-Matrix origin="origin.example:8448",destination=dest.example,key="ed25519:k1",'
                       'sig="a\\"b"')
    assert (h.origin, h.destination, h.key, h.sig) == ("origin.example:8448", "dest.example", "ed25519:k1", 'a"b')
    h = parse_x_matrix("x-matrix  Origin=o.example , Key=ed25519:k1 , SIG=abc")
    assert (h.origin, h.destination, h.key, h.sig) == ("o.example", None, "ed25519:k1", "abc")


@pytest.mark.parametrize("header", [
    "Bearer abc",
    "X-Matrix",
    'X-Matrix origin="o.example",key="ed25519:k1"',  # no sig
    'X-Matrix origin="o.example",key="ed25519:k1",sig="x",sig="y"',  # repeated
    'X-Matrix origin="o.example,key="ed25519:k1",sig="x"',  # unterminated quote
    'X-Matrix origin',
])
def test_parse_rejects_malformed_headers(header: str) -> None:
    with pytest.raises(MatrixError) as e:
        parse_x_matrix(header)
    assert e.value.status == 401 and e.value.errcode == "M_UNAUTHORIZED"


def test_an_origin_that_is_no_server_name_is_a_bad_request() -> None:
    for origin in ("not a server!", "localhost:http"):
        with pytest.raises(MatrixError) as e:
            parse_x_matrix(f'X-Matrix origin="{origin}",key="ed25519:k1",sig="x"')
        assert (e.value.status, e.value.errcode) == (400, "M_UNAUTHORIZED")


def test_header_signature_covers_the_spec_object() -> None:
    content = {"a": [1, 2], "b": "ü"}
    header = authorization_header(KEY, "o.example", "d.example", "put", "/_matrix/x?y=1", content)
    parsed = parse_x_matrix(header)
    assert parsed.destination == "d.example" and parsed.key == key_id(KEY)
    expected = sign_json(request_json("PUT", "/_matrix/x?y=1", "o.example", "d.example", content), "o.example", KEY)
    assert parsed.sig == expected["signatures"]["o.example"][key_id(KEY)]


def _authenticator(lookups: list[tuple[str, str, int]], allow: bool = True) -> RequestAuthenticator:
    async def lookup(server: str, kid: str, minimum: int) -> str:
        lookups.append((server, kid, minimum))
        if server == "o.example" and kid == key_id(KEY):
            return verify_key_b64(KEY)
        raise MatrixError(401, "M_UNAUTHORIZED", "no such key")

    return RequestAuthenticator("d.example", lookup, lambda name: allow, lambda: NOW)


async def test_a_signed_request_is_accepted() -> None:
    lookups: list[tuple[str, str, int]] = []
    auth = _authenticator(lookups)
    content = {"x": 1}
    header = authorization_header(KEY, "o.example", "d.example", "POST", "/p?q=%40a", content)
    assert await auth.authenticate("POST", "/p?q=%40a", [header], content) == "o.example"
    assert lookups == [("o.example", key_id(KEY), NOW)]  # the key must be valid now


async def test_destination_may_be_absent_but_not_wrong() -> None:
    auth = _authenticator([])
    header = authorization_header(KEY, "o.example", "d.example", "GET", "/p")
    without = header.replace(',destination="d.example"', "")
    assert await auth.authenticate("GET", "/p", [without]) == "o.example"
    wrong = authorization_header(KEY, "o.example", "other.example", "GET", "/p")
    with pytest.raises(MatrixError) as e:
        await auth.authenticate("GET", "/p", [wrong])
    assert e.value.status == 401


@pytest.mark.parametrize("change", ["method", "uri", "content", "no content", "origin"])
async def test_any_change_breaks_the_signature(change: str) -> None:
    auth = _authenticator([])
    content = {"x": 1}
    header = authorization_header(KEY, "o.example", "d.example", "PUT", "/p", content)
    method, uri, body = "PUT", "/p", content
    if change == "method":
        method = "POST"
    elif change == "uri":
        uri = "/p?extra=1"
    elif change == "content":
        body = {"x": 2}
    elif change == "no content":
        body = None  # type: ignore[assignment]
    else:
        header = header.replace('origin="o.example"', 'origin="e.example"')
    with pytest.raises(MatrixError) as e:
        await auth.authenticate(method, uri, [header], body)
    assert (e.value.status, e.value.errcode) == (401, "M_UNAUTHORIZED")


async def test_missing_header_unknown_key_and_own_name() -> None:
    auth = _authenticator([])
    with pytest.raises(MatrixError) as e:
        await auth.authenticate("GET", "/p", [])
    assert e.value.status == 401
    other = generate_signing_key("k2")
    with pytest.raises(MatrixError) as e:
        await auth.authenticate("GET", "/p", [authorization_header(other, "o.example", "d.example", "GET", "/p")])
    assert e.value.status == 401
    with pytest.raises(MatrixError) as e:
        await auth.authenticate("GET", "/p", [authorization_header(KEY, "d.example", "d.example", "GET", "/p")])
    assert e.value.status == 401


async def test_first_valid_header_wins_and_domain_allowlist_applies() -> None:
    auth = _authenticator([])
    good = authorization_header(KEY, "o.example", "d.example", "GET", "/p")
    assert await auth.authenticate("GET", "/p", ["X-Matrix broken", good]) == "o.example"
    closed = _authenticator([], allow=False)
    with pytest.raises(MatrixError) as e:
        await closed.authenticate("GET", "/p", [good])
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")
