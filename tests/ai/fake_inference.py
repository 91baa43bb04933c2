"""A fake inference server on loopback speaking the real OpenAI and Ollama HTTP APIs.

It is a plain asyncio HTTP/1.1 server so the bytes on the wire are exactly the real servers':
chunked transfer encoding, OpenAI's Server-Sent Events (`data: {chunk}\\n\\n` ... `data:
[DONE]\\n\\n`, Content-Type text/event-stream) and Ollama's NDJSON (one JSON object per line,
Content-Type application/x-ndjson, the last with "done": true and its timing fields), and the
error bodies each returns for a missing model. Knobs: a delay before answering, a delay
between chunks, a hang (nothing after the headers until released), scripted failures and
redirects. Every request is recorded; a client that goes away mid-stream sets `disconnected`.

CORS as Ollama answers it when `OLLAMA_ORIGINS` names the page's origin (`cors_origins`): a
preflight `OPTIONS` gets 204 with the Access-Control-Allow-* headers, responses carry
`Access-Control-Allow-Origin`, and a request from any other origin is refused with 403.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

WORD = re.compile(r"[a-z0-9]+")
EMBED_DIM = 64
_ORIGIN: ContextVar[str | None] = ContextVar("origin", default=None)  # of the request being answered
CORS_PREFLIGHT = ("Access-Control-Allow-Methods: GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS\r\n"
                  "Access-Control-Allow-Headers: Authorization,Content-Type,User-Agent,Accept,X-Requested-With\r\n"
                  "Access-Control-Max-Age: 43200\r\n")


def fake_embedding(text: str) -> list[float]:
    """Bag of hashed words, normalized: texts sharing words point the same way."""
    v = [0.0] * EMBED_DIM
    for w in WORD.findall(text.lower()):
        v[int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "big") % EMBED_DIM] += 1.0
    n = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / n for x in v]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeInference:
    chat_models: tuple[str, ...] = ("llama3.2", "qwen2.5")
    embed_models: tuple[str, ...] = ("nomic-embed-text",)
    reply: list[str] = field(default_factory=lambda: ["The ", "team ", "fixed ", "the ", "outage."])
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    hang: bool = False
    fail_next: list[int] = field(default_factory=list)  # statuses for the next requests
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    cors_origins: tuple[str, ...] = ()  # origins allowed like OLLAMA_ORIGINS does
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.release = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.stream_started = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeInference:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def chats(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path in ("/v1/chat/completions", "/api/chat")]

    # ------------------------------------------------------------------ HTTP

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = orjson.loads(raw) if raw and method != "OPTIONS" else None
                self.requests.append(Recorded(method, path, headers, body))
                origin = headers.get("origin")
                _ORIGIN.set(origin)
                if origin is not None and origin not in self.cors_origins:
                    await self._send(writer, 403, b"")
                elif method == "OPTIONS":
                    await self._send(writer, 204, b"", extra=CORS_PREFLIGHT)
                else:
                    await self._answer(method, path, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                    ctype: str = "application/json", extra: str = "") -> None:
        reason = {200: "OK", 204: "No Content", 307: "Temporary Redirect", 403: "Forbidden", 404: "Not Found",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        length = "" if status == 204 else f"Content-Length: {len(body)}\r\n"
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n{length}{self._cors()}"
                     f"{extra}\r\n".encode() + body)
        await writer.drain()

    def _cors(self) -> str:
        origin = _ORIGIN.get()
        if origin is None or origin not in self.cors_origins:
            return ""
        return f"Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n"

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    async def _answer(self, method: str, path: str, body: Any, writer: asyncio.StreamWriter) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if path in self.redirects:
            await self._send(writer, 307, b"", extra=f"Location: {self.redirects[path]}\r\n")
            return
        if self.fail_next:
            status = self.fail_next.pop(0)
            await self._send(writer, status, b'{"error":"internal error"}')
            return
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "library"}
                    for m in (*self.chat_models, *self.embed_models)]
            await self._send(writer, 200, orjson.dumps({"object": "list", "data": data}))
        elif method == "GET" and path == "/api/tags":
            models = [{"name": f"{m}:latest", "model": f"{m}:latest", "modified_at": "2026-11-30T10:00:00Z",
                       "size": 2019393189, "digest": hashlib.sha256(m.encode()).hexdigest(),
                       "details": {"format": "gguf", "family": "llama"}}
                      for m in (*self.chat_models, *self.embed_models)]
            await self._send(writer, 200, orjson.dumps({"models": models}))
        elif method == "POST" and path == "/v1/chat/completions":
            await self._openai_chat(body, writer)
        elif method == "POST" and path == "/api/chat":
            await self._ollama_chat(body, writer)
        elif method == "POST" and path in ("/v1/embeddings", "/api/embed"):
            await self._embed(path, body, writer)
        else:
            await self._send(writer, 404, b"404 page not found", "text/plain; charset=utf-8")

    def _known(self, model: Any, pool: tuple[str, ...]) -> bool:
        return isinstance(model, str) and model.removesuffix(":latest") in pool

    async def _stream(self, writer: asyncio.StreamWriter, ctype: str, frames: list[bytes]) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n{self._cors()}"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        await writer.drain()
        self.stream_started.set()
        try:
            if self.hang:
                await self.release.wait()
            for f in frames:
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                await self._chunk(writer, f)
                if writer.transport.is_closing():
                    raise ConnectionResetError
            await self._chunk(writer, b"")
        except (ConnectionError, RuntimeError):
            self.disconnected.set()
            raise ConnectionResetError from None

    async def _openai_chat(self, body: Any, writer: asyncio.StreamWriter) -> None:
        model = body.get("model")
        if not self._known(model, self.chat_models):
            err = {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                             "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
            await self._send(writer, 404, orjson.dumps(err))
            return
        base = {"id": "chatcmpl-parleytest", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_fake"}

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            c = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(c) + b"\n\n"

        if not body.get("stream"):
            text = "".join(self.reply)
            out = {"id": "chatcmpl-parleytest", "object": "chat.completion", "created": base["created"],
                   "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                "finish_reason": "stop"}]}
            await self._send(writer, 200, orjson.dumps(out))
            return
        frames = [chunk({"role": "assistant", "content": ""}, None)]
        frames += [chunk({"content": t}, None) for t in self.reply]
        frames += [chunk({}, "stop"), b"data: [DONE]\n\n"]
        await self._stream(writer, "text/event-stream; charset=utf-8", frames)

    async def _ollama_chat(self, body: Any, writer: asyncio.StreamWriter) -> None:
        model = body.get("model")
        if not self._known(model, self.chat_models):
            await self._send(writer, 404, orjson.dumps({"error": f"model \"{model}\" not found, try pulling it first"}))
            return
        at = "2026-12-01T19:00:00.000000000Z"
        frames = [orjson.dumps({"model": model, "created_at": at, "message": {"role": "assistant", "content": t},
                                "done": False}) + b"\n" for t in self.reply]
        frames.append(orjson.dumps({
            "model": model, "created_at": at, "message": {"role": "assistant", "content": ""}, "done": True,
            "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875,
            "prompt_eval_count": 26, "prompt_eval_duration": 342546000, "eval_count": len(self.reply),
            "eval_duration": 4535599000}) + b"\n")
        await self._stream(writer, "application/x-ndjson", frames)

    async def _embed(self, path: str, body: Any, writer: asyncio.StreamWriter) -> None:
        model = body.get("model")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not self._known(model, self.embed_models):
            err: Any = {"error": f"model \"{model}\" not found, try pulling it first"} if path == "/api/embed" else \
                {"error": {"message": f"The model `{model}` does not exist", "type": "invalid_request_error",
                           "param": None, "code": "model_not_found"}}
            await self._send(writer, 404, orjson.dumps(err))
            return
        vecs = [fake_embedding(t) for t in texts]
        if path == "/api/embed":
            out: Any = {"model": model, "embeddings": vecs, "total_duration": 14143917, "load_duration": 1019500,
                        "prompt_eval_count": 8}
        else:
            out = {"object": "list", "model": model, "usage": {"prompt_tokens": 8, "total_tokens": 8},
                   "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]}
        await self._send(writer, 200, orjson.dumps(out))
