"""Two organizations on one tailnet: MagicDNS names as server names, tailnet addresses
(100.64.0.0/10 and fd7a:115c:a1e0::/48, which are not public) reached only when the operator
allow-lists them, certificates checked against the MagicDNS name. No step needs public DNS: no
SRV record and no .well-known exist for a MagicDNS name, so discovery ends at <name>:8448."""

from __future__ import annotations

import httpx
import pytest

from federation.request_auth import parse_x_matrix
from homeserver.protocol.errors import MatrixError
from tests.federation.test_client import _client

NAME = "parley.tail4a2b.ts.net"
TAILNET_ALLOW = ("100.64.0.0/10", "fd7a:115c:a1e0::/48")


@pytest.mark.parametrize("ip", ["100.101.102.103", "fd7a:115c:a1e0::1234"])
async def test_magicdns_peer_is_reached_on_8448_only_when_the_tailnet_is_allow_listed(ip: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/.well-known/matrix/server":
            return httpx.Response(404, json={})  # a MagicDNS name delegates nowhere
        return httpx.Response(200, json={"server": {"name": "Parley"}})

    refused = _client(handler, ips={NAME: [ip]})
    with pytest.raises(MatrixError) as e:
        await refused.get_json(NAME, "/_matrix/federation/v1/version")
    assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")
    assert seen == []
    await refused.close()

    client = _client(handler, allow=TAILNET_ALLOW, ips={NAME: [ip]})
    assert await client.get_json(NAME, "/_matrix/federation/v1/version") == {"server": {"name": "Parley"}}
    well_known, req = seen
    assert well_known.url.host == ip  # the .well-known lookup went to the checked address too
    assert req.url.host == ip and req.url.port == 8448  # connected to the checked tailnet address
    assert req.headers["host"] == NAME
    assert req.extensions["sni_hostname"] == NAME  # the `tailscale cert` certificate's name
    assert parse_x_matrix(req.headers["authorization"]).destination == NAME
    await client.close()


async def test_tailnet_allow_list_does_not_open_other_private_ranges() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    client = _client(handler, allow=TAILNET_ALLOW, ips={NAME: ["10.0.0.7"], "meta.ts.net": ["169.254.169.254"]})
    for name in (NAME, "meta.ts.net"):
        with pytest.raises(MatrixError) as e:
            await client.get_json(name, "/x")
        assert e.value.status == 403
    await client.close()
