"""A small asyncio HTTP/1.1 client for the Client-Server API, standard library only (the
sandbox imports nothing from the server's environment)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any


class ApiError(Exception):
    """A Matrix error answer: `status`, `errcode`, `error`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.errcode = str(body.get("errcode", "M_UNKNOWN"))
        self.error = str(body.get("error", ""))
        super().__init__(f"{status} {self.errcode}: {self.error}")


def quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class Client:
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("the plugin client speaks plain HTTP to a local server URL")
        self.host = u.hostname
        self.port = u.port or 80
        self.token = token
        self.timeout = timeout
        self._txn = 0

    def txn_id(self) -> str:
        self._txn += 1
        return f"p{id(self):x}.{self._txn}"

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """`path` below the server root, e.g. `/_matrix/client/v3/account/whoami`."""
        return await asyncio.wait_for(self._request(method, path, body), self.timeout)

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else b""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + payload)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        header, _, data = raw.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = _unchunk(data)
        value = json.loads(data) if data.strip() else {}
        if status >= 400:
            raise ApiError(status, value if isinstance(value, dict) else {})
        return value if isinstance(value, dict) else {"value": value}


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out
