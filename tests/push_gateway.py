"""A push gateway on loopback for tests: it speaks the Push Gateway API
(POST /_matrix/push/v1/notify -> {"rejected": [...]}) and accepts Web Push requests on any other
path, recording every request. Its answer can be set per test: a status, pushkeys to reject, or
hanging (never answering) to play a dead gateway."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.perf_counter)

    def json(self) -> Any:
        return orjson.loads(self.body)


class TestGateway:
    __test__ = False

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.statuses: list[int] = []  # answers for the next requests, then 200
        self.rejected: list[str] = []
        self.hang = False
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._hung: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/_matrix/push/v1/notify"

    async def start(self) -> TestGateway:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for w in self._hung:
            w.close()
        if self._server is not None:
            self._server.close()

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[Recorded]:
        """Wait until at least n requests arrived (a deadline, not a sleep)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.requests) >= n), timeout)
        return self.requests

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                async with self._arrived:
                    self.requests.append(Recorded(method, path, headers, body))
                    self._arrived.notify_all()
                if self.hang:
                    self._hung.append(writer)
                    return
                status = self.statuses.pop(0) if self.statuses else 200
                if path == "/_matrix/push/v1/notify":
                    sent = orjson.loads(body)["notification"]["devices"]
                    out = orjson.dumps({"rejected": [d["pushkey"] for d in sent if d["pushkey"] in self.rejected]})
                else:
                    out = b"{}"
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(out)}\r\n\r\n".encode() + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
