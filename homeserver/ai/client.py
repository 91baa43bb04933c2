"""One client for the two API styles inference servers speak.

- OpenAI-compatible (vLLM, LM Studio, llama.cpp's server, Ollama's /v1): POST
  /v1/chat/completions (streaming as Server-Sent Events, `data: {...}` chunks ended by
  `data: [DONE]`), POST /v1/embeddings, GET /v1/models.
- Ollama native: POST /api/chat (streaming as one JSON object per line, the last with
  "done": true), POST /api/embed, GET /api/tags.

Failures become Matrix-style errors the client can show: 502 ORG.PARLEY.AI_UNAVAILABLE (cannot
connect), 504 ORG.PARLEY.AI_TIMEOUT (no answer, or a stream that stalls), 404
ORG.PARLEY.AI_MODEL_NOT_FOUND, 502 ORG.PARLEY.AI_UPSTREAM_ERROR (any other refusal). Connection
failures and 5xx answers are retried with backoff while nothing has been streamed yet.
Cancelling the awaiting task closes the upstream connection, which stops the generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from homeserver.ai.endpoint import Endpoint, send_checked
from homeserver.config_ai import AIConfig
from homeserver.protocol.errors import MatrixError

log = logging.getLogger("parley.ai")
Message = dict[str, str]
BACKOFF_S = 0.25


def _upstream_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err)
    return str(err if err is not None else data)[:200]


def _is_model_missing(status: int, message: str) -> bool:
    m = message.lower()
    return status in (400, 404) and "model" in m and ("not found" in m or "does not exist" in m)


class InferenceClient:
    def __init__(self, cfg: AIConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        timeout = httpx.Timeout(cfg.request_timeout_s, connect=cfg.connect_timeout_s, read=cfg.read_timeout_s)
        self.http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False,
                                      trust_env=False)

    async def close(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _open(self, ep: Endpoint, method: str, path: str, body: Any, stream: bool) -> httpx.Response:
        """The upstream response with a 2xx status (open, if `stream`); errors mapped."""
        attempt = 0
        while True:
            try:
                resp = await send_checked(self.http, ep, method, ep.path(path), body, stream=stream)
            except httpx.TimeoutException:
                err = MatrixError(504, "ORG.PARLEY.AI_TIMEOUT", "The inference server did not answer in time")
            except httpx.HTTPError as e:
                log.info("inference server %s unreachable: %s", ep.url, e)
                err = MatrixError(502, "ORG.PARLEY.AI_UNAVAILABLE", "The inference server could not be reached")
            else:
                if resp.status_code < 300:
                    return resp
                raw = await resp.aread()
                await resp.aclose()
                message = _upstream_message(raw)
                if _is_model_missing(resp.status_code, message):
                    raise MatrixError(404, "ORG.PARLEY.AI_MODEL_NOT_FOUND",
                                      f"The inference server has no such model: {message}")
                err = MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR",
                                  f"The inference server answered {resp.status_code}: {message}")
                if resp.status_code < 500 and resp.status_code != 429:
                    raise err
            if attempt >= self.cfg.retries:
                raise err
            await asyncio.sleep(BACKOFF_S * 2**attempt)
            attempt += 1

    async def _json(self, ep: Endpoint, method: str, path: str, body: Any = None) -> Any:
        resp = await self._open(ep, method, path, body, stream=False)
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", "The inference server sent invalid JSON") from None

    # ------------------------------------------------------------------ API

    async def models(self, ep: Endpoint) -> list[str]:
        if ep.api_style == "ollama":
            data = await self._json(ep, "GET", "/api/tags")
            items = data.get("models", []) if isinstance(data, dict) else []
            return [str(m.get("name")) for m in items if isinstance(m, dict) and m.get("name")]
        data = await self._json(ep, "GET", "/v1/models")
        items = data.get("data", []) if isinstance(data, dict) else []
        return [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")]

    async def chat_stream(self, ep: Endpoint, model: str, messages: list[Message],
                          max_tokens: int | None = None) -> AsyncIterator[str]:
        """The generated text, piece by piece as the server streams it."""
        if ep.api_style == "ollama":
            body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
            if max_tokens:
                body["options"] = {"num_predict": max_tokens}
            path = "/api/chat"
        else:
            body = {"model": model, "messages": messages, "stream": True}
            if max_tokens:
                body["max_tokens"] = max_tokens
            path = "/v1/chat/completions"
        resp = await self._open(ep, "POST", path, body, stream=True)
        try:
            lines = resp.aiter_lines()
            parse = self._ollama_piece if ep.api_style == "ollama" else self._openai_piece
            while True:
                try:
                    line = await lines.__anext__()
                except StopAsyncIteration:
                    return
                except httpx.TimeoutException:
                    raise MatrixError(504, "ORG.PARLEY.AI_TIMEOUT", "The inference server stopped streaming") from None
                except httpx.HTTPError:
                    raise MatrixError(502, "ORG.PARLEY.AI_UNAVAILABLE", "The inference server dropped the stream") \
                        from None
                piece, done = parse(line)
                if piece:
                    yield piece
                if done:
                    return
        finally:
            await resp.aclose()

    @staticmethod
    def _openai_piece(line: str) -> tuple[str, bool]:
        if not line.startswith("data:"):
            return "", False  # blank separators, comments (": keep-alive"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            return "", True
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", "Malformed stream chunk") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", _upstream_message(data.encode()))
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            return "", False
        delta = choices[0].get("delta") or {}
        return str(delta.get("content") or ""), False

    @staticmethod
    def _ollama_piece(line: str) -> tuple[str, bool]:
        if not line.strip():
            return "", False
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", "Malformed stream line") from None
        if not isinstance(obj, dict):
            return "", False
        if "error" in obj:
            raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", str(obj["error"]))
        msg = obj.get("message") or {}
        return str(msg.get("content") or ""), bool(obj.get("done"))

    async def chat(self, ep: Endpoint, model: str, messages: list[Message], max_tokens: int | None = None) -> str:
        return "".join([p async for p in self.chat_stream(ep, model, messages, max_tokens)])

    async def embed(self, ep: Endpoint, model: str, texts: list[str]) -> list[list[float]]:
        if ep.api_style == "ollama":
            data = await self._json(ep, "POST", "/api/embed", {"model": model, "input": texts})
            vecs = data.get("embeddings") if isinstance(data, dict) else None
        else:
            data = await self._json(ep, "POST", "/v1/embeddings", {"model": model, "input": texts})
            items = data.get("data") if isinstance(data, dict) else None
            vecs = [d.get("embedding") for d in sorted(items, key=lambda d: d.get("index", 0))] \
                if isinstance(items, list) else None
        if not isinstance(vecs, list) or len(vecs) != len(texts):
            raise MatrixError(502, "ORG.PARLEY.AI_UPSTREAM_ERROR", "The inference server sent no embeddings")
        return [[float(x) for x in v] for v in vecs]
