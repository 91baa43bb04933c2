"""Per-user AI settings and the choice of endpoint for each request.

A user may name their own inference server (if the admin's `user_endpoints` policy allows it);
otherwise the organization's `[ai] endpoint` serves them. The user's token is sealed with a
secretbox key derived from the server's signing-key seed (every worker derives the same key,
nothing extra to distribute) and is never returned: reads say only `has_token`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

import nacl.exceptions
import nacl.secret
import nacl.utils

from homeserver.ai.endpoint import Endpoint, check_url_syntax, normalize_url
from homeserver.config_ai import API_STYLES, AIConfig
from homeserver.outbound import AddressPolicy, Resolver, system_resolve
from homeserver.protocol.errors import MatrixError
from homeserver.storage.ai import AIStore, UserAISettings

FEATURES = ("summary", "suggest", "topics", "embedding")
MAX_MODEL_NAME = 200


def secretbox_key(seed: bytes) -> bytes:
    return hashlib.sha256(b"parley.ai.token-key\x00" + seed).digest()


class AISettings:
    def __init__(self, store: AIStore, cfg: AIConfig, seed: bytes, resolver: Resolver = system_resolve) -> None:
        self.store = store
        self.cfg = cfg
        self.box = nacl.secret.SecretBox(secretbox_key(seed))
        self.policy = AddressPolicy(cfg.user_endpoint_allowlist, resolver)

    def seal(self, token: str) -> str:
        return base64.b64encode(bytes(self.box.encrypt(token.encode()))).decode()

    def unseal(self, sealed: str) -> str | None:
        try:
            return self.box.decrypt(base64.b64decode(sealed)).decode()
        except (nacl.exceptions.CryptoError, ValueError):
            return None  # sealed under another server key: the user must enter it again

    # ------------------------------------------------------------------ API

    async def get(self, user_id: str) -> dict[str, Any]:
        s = await self.store.get_settings(user_id)
        return {
            "endpoint": s.endpoint if s else None,
            "api_style": s.api_style if s else "openai",
            "has_token": bool(s and s.token_sealed),
            "models": s.models if s else {},
            "server": {
                "enabled": self.cfg.enabled,
                "endpoint_configured": self.cfg.endpoint is not None,
                "user_endpoints": self.cfg.user_endpoints,
                # A client summarizing an encrypted room itself uses this model unless the user chose one.
                "summary_model": self.cfg.summary_model,
            },
            "available": self.cfg.enabled and (self.cfg.endpoint is not None or bool(s and s.endpoint)),
        }

    async def put(self, user_id: str, body: dict[str, Any]) -> None:
        if not self.cfg.enabled:
            raise MatrixError(403, "M_FORBIDDEN", "AI features are disabled on this server")
        endpoint = body.get("endpoint")
        api_style = body.get("api_style", "openai")
        if api_style not in API_STYLES:
            raise MatrixError(400, "M_INVALID_PARAM", f"'api_style' must be one of {', '.join(API_STYLES)}")
        if endpoint is not None:
            if not isinstance(endpoint, str) or len(endpoint) > 2000:
                raise MatrixError(400, "M_INVALID_PARAM", "'endpoint' must be a URL or null")
            check_url_syntax(endpoint)
            await self._check_user_endpoint(endpoint)
        models = body.get("models", {})
        if not isinstance(models, dict) or any(
                k not in FEATURES or not isinstance(v, str) or not 0 < len(v) <= MAX_MODEL_NAME
                for k, v in models.items()):
            raise MatrixError(400, "M_INVALID_PARAM",
                              f"'models' maps features ({', '.join(FEATURES)}) to model names")
        old = await self.store.get_settings(user_id)
        sealed = old.token_sealed if old else None
        if "token" in body:
            token = body["token"]
            if token is not None and (not isinstance(token, str) or not token or len(token) > 4000):
                raise MatrixError(400, "M_INVALID_PARAM", "'token' must be a non-empty string or null")
            sealed = self.seal(token) if token else None
        await self.store.put_settings(
            user_id, UserAISettings(endpoint, api_style, sealed, dict(models)), int(time.time() * 1000))

    async def delete(self, user_id: str) -> None:
        await self.store.delete_settings(user_id)

    async def _check_user_endpoint(self, url: str) -> None:
        if self.cfg.user_endpoints == "off":
            raise MatrixError(403, "M_FORBIDDEN", "This server does not allow personal inference endpoints")
        if self.cfg.user_endpoints == "public-only":
            parts = urlsplit(url)
            await self.policy.checked_address(parts.hostname or "", parts.port or 80)

    # ------------------------------------------------------------------ resolution

    async def endpoint_for(self, user_id: str, feature: str) -> tuple[Endpoint, str]:
        """The endpoint and model serving `feature` for this user; 404 when there is none."""
        if not self.cfg.enabled:
            raise MatrixError(403, "M_FORBIDDEN", "AI features are disabled on this server")
        s = await self.store.get_settings(user_id)
        server_model = {"summary": self.cfg.summary_model, "suggest": self.cfg.suggest_model,
                        "topics": self.cfg.topics_model, "embedding": self.cfg.embedding_model}[feature]
        model = (s.models.get(feature) if s else None) or server_model
        if s is not None and s.endpoint is not None and self.cfg.user_endpoints != "off":
            token = self.unseal(s.token_sealed) if s.token_sealed else None
            policy = self.policy if self.cfg.user_endpoints == "public-only" else None
            return Endpoint(normalize_url(s.endpoint, s.api_style), s.api_style, token, policy), model
        if self.cfg.endpoint is None:
            raise MatrixError(404, "ORG.PARLEY.AI_NOT_CONFIGURED", "No inference server is configured")
        ep = Endpoint(normalize_url(self.cfg.endpoint, self.cfg.api_style), self.cfg.api_style, self.cfg.token)
        return ep, model

    def server_endpoint(self) -> Endpoint | None:
        if not self.cfg.enabled or self.cfg.endpoint is None:
            return None
        return Endpoint(normalize_url(self.cfg.endpoint, self.cfg.api_style), self.cfg.api_style, self.cfg.token)
