"""The federation capability as the rest of the server sees it: built once in homeserver/app.py.

Holds the outbound client, the remote key cache (and notary), and the inbound request
authenticator; federation routes and services reach them through `hs.federation`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from federation.client import FederationClient
from federation.discovery import SrvLookup, dns_srv_lookup
from federation.keys import KeyFetcher
from federation.media_client import RemoteMediaFetcher
from federation.request_auth import RequestAuthenticator
from homeserver.config_federation import FederationConfig
from homeserver.keys.signing_key import RetiredKey
from homeserver.outbound import Resolver, system_resolve
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import server_name_of
from homeserver.protocol.signing import SigningKey
from homeserver.storage.server_keys import ServerKeyStore


def _now_ms() -> int:
    return int(time.time() * 1000)


class Federation:
    def __init__(self, server_name: str, config: FederationConfig, signing_key: SigningKey,
                 retired: list[RetiredKey], key_store: ServerKeyStore, *,
                 transport: httpx.AsyncBaseTransport | None = None, resolve_ip: Resolver = system_resolve,
                 srv_lookup: SrvLookup = dns_srv_lookup, retry_delay_s: float = 0.5) -> None:
        self.server_name = server_name
        self.config = config
        self.client = FederationClient(server_name, signing_key, config, transport=transport,
                                       resolve_ip=resolve_ip, srv_lookup=srv_lookup, retry_delay_s=retry_delay_s)
        self.keys = KeyFetcher(server_name, signing_key, retired, key_store, self.client,
                               config.trusted_key_servers, _now_ms)
        self.media = RemoteMediaFetcher(self.client)
        self.auth = RequestAuthenticator(server_name, self.keys.verify_key, config.allows_domain, _now_ms)

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def require_enabled(self) -> None:
        if not self.config.enabled:
            raise MatrixError(404, "M_UNRECOGNIZED", "Federation is not enabled on this server")

    async def authenticate(self, method: str, uri: str, headers: list[str], content: Any = None) -> str:
        """The origin server of an inbound request (401 M_UNAUTHORIZED if not properly signed)."""
        self.require_enabled()
        return await self.auth.authenticate(method, uri, headers, content)

    async def query_profile(self, user_id: str) -> dict[str, Any]:
        """A remote user's profile from their server (404 when they have none)."""
        self.require_enabled()
        resp = await self.client.get_json(server_name_of(user_id), "/_matrix/federation/v1/query/profile",
                                          {"user_id": user_id})
        return {k: v for k, v in resp.items() if k in ("displayname", "avatar_url") and isinstance(v, str)}

    async def query_directory(self, alias: str) -> dict[str, Any]:
        """A remote alias's room ID and servers, from the alias's server."""
        self.require_enabled()
        resp = await self.client.get_json(server_name_of(alias), "/_matrix/federation/v1/query/directory",
                                          {"room_alias": alias})
        room_id, servers = resp.get("room_id"), resp.get("servers")
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise MatrixError(502, "M_UNKNOWN", "The alias's server gave a malformed answer")
        return {"room_id": room_id, "servers": [s for s in servers if isinstance(s, str)]}

    async def query_user_keys(self, server: str, device_keys: dict[str, list[str]],
                              timeout_s: float) -> dict[str, Any]:
        """`POST /_matrix/federation/v1/user/keys/query` on `server` (keys/remote.py checks the answer)."""
        self.require_enabled()
        return await self.client.post_json(server, "/_matrix/federation/v1/user/keys/query",
                                           {"device_keys": device_keys}, idempotent=True, timeout_s=timeout_s)

    async def claim_user_keys(self, server: str, one_time_keys: dict[str, dict[str, str]],
                              timeout_s: float) -> dict[str, Any]:
        """`POST /_matrix/federation/v1/user/keys/claim` on `server`; never retried (keys are used up)."""
        self.require_enabled()
        return await self.client.post_json(server, "/_matrix/federation/v1/user/keys/claim",
                                           {"one_time_keys": one_time_keys}, timeout_s=timeout_s)

    async def hierarchy(self, server: str, room_id: str, suggested_only: bool) -> dict[str, Any]:
        """A space's hierarchy as `server` lets us see it (`GET /_matrix/federation/v1/hierarchy`)."""
        self.require_enabled()
        return await self.client.get_json(server, f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}",
                                          {"suggested_only": "true" if suggested_only else "false"})

    async def close(self) -> None:
        await self.client.close()
