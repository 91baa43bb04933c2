"""Third-party lookups (Client-Server API §Third-party Lookup, Application Service API
§Third-party networks): the homeserver answers `/thirdparty/...` by asking the application
services whose registration lists the protocol (`protocols: [...]`), over
`GET {url}/_matrix/app/v1/thirdparty/...` with the hs_token, and merging their answers.

- protocols: the first AS's metadata for a protocol, with the instances of all of them, each
  given an `instance_id` unique on this server (`<as id>|<network_id>`);
- location/user by protocol and fields, location by alias, user by Matrix user ID: the lists
  of every AS asked, concatenated. An AS that fails, times out or answers something that is not
  a list of objects counts as having found nothing; an unknown protocol is `404 M_NOT_FOUND`."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from homeserver.appservice.registration import AppService
from homeserver.protocol.errors import MatrixError

log = logging.getLogger("parley.appservice")
TIMEOUT_S = 10.0
MAX_RESULTS = 500
Params = list[tuple[str, str]]


class ThirdPartyLookups:
    def __init__(self, services: list[AppService], transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.services = services
        self.transport = transport

    def _bridging(self, protocol: str) -> list[AppService]:
        return [a for a in self.services if a.url and protocol in a.protocols]

    async def _get(self, a: AppService, path: str, params: Params) -> Any:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, transport=self.transport) as http:
                r = await http.get(f"{a.url}/_matrix/app/v1/thirdparty/{path}", params=tuple(params),
                                   headers={"Authorization": f"Bearer {a.hs_token}"})
        except httpx.HTTPError as e:
            log.warning("appservice %s: thirdparty/%s failed: %s", a.id, path, e)
            return None
        if r.status_code != 200:
            return None
        try:
            return r.json()
        except ValueError:
            return None

    async def protocols(self) -> dict[str, Any]:
        names = sorted({p for a in self.services if a.url for p in a.protocols})
        out = {}
        for name in names:
            got = await self._protocol(name)
            if got is not None:
                out[name] = got
        return out

    async def protocol(self, name: str) -> dict[str, Any]:
        got = await self._protocol(name) if self._bridging(name) else None
        if got is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown protocol {name!r}")
        return got

    async def _protocol(self, name: str) -> dict[str, Any] | None:
        merged: dict[str, Any] | None = None
        instances: list[dict[str, Any]] = []
        for a in self._bridging(name):
            meta = await self._get(a, f"protocol/{quote(name, safe='')}", [])
            if not isinstance(meta, dict):
                continue
            if merged is None:
                merged = {k: v for k, v in meta.items() if k != "instances"}
            for inst in meta.get("instances") or []:
                if isinstance(inst, dict) and isinstance(inst.get("network_id"), str):
                    instances.append({**inst, "instance_id": f"{a.id}|{inst['network_id']}"})
        if merged is None:
            return None
        return {**merged, "instances": instances}

    async def _gather(self, services: list[AppService], path: str, params: Params) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for a in services:
            got = await self._get(a, path, params)
            if isinstance(got, list):
                out += [item for item in got if isinstance(item, dict)]
        return out[:MAX_RESULTS]

    async def by_protocol(self, kind: str, name: str, fields: Params) -> list[dict[str, Any]]:
        """kind "location" or "user": the portals or users matching `fields` on `name`."""
        services = self._bridging(name)
        if not services:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown protocol {name!r}")
        return await self._gather(services, f"{kind}/{quote(name, safe='')}", fields)

    async def location_of_alias(self, alias: Any) -> list[dict[str, Any]]:
        if not isinstance(alias, str) or not alias.startswith("#"):
            raise MatrixError(400, "M_MISSING_PARAM", "'alias' must be a room alias")
        return await self._gather([a for a in self.services if a.url and a.protocols], "location",
                                  [("alias", alias)])

    async def user_of_id(self, user_id: Any) -> list[dict[str, Any]]:
        if not isinstance(user_id, str) or not user_id.startswith("@"):
            raise MatrixError(400, "M_MISSING_PARAM", "'userid' must be a Matrix user ID")
        return await self._gather([a for a in self.services if a.url and a.protocols], "user",
                                  [("userid", user_id)])
