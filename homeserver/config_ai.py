"""The `[ai]` configuration table: the organization's inference server and the policy for the
endpoints users name themselves.

Every key can be overridden by PARLEY_AI__<KEY> (lists comma-separated there). Without an
`endpoint` the AI features that need a chat model answer 404 ORG.PARLEY.AI_NOT_CONFIGURED
unless a user configures their own; smart search still works on the local embedding model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.config_values import ConfigError, as_bool, as_cidr_list, as_float, as_str

API_STYLES = ("openai", "ollama")
USER_ENDPOINT_POLICIES = ("off", "public-only", "any")


@dataclass(frozen=True)
class AIConfig:
    enabled: bool = True
    # The organization's default inference server, e.g. http://ollama:11434 or https://llm/v1.
    endpoint: str | None = None
    api_style: str = "openai"
    token: str | None = None
    summary_model: str = "llama3.2"
    suggest_model: str = "llama3.2"
    topics_model: str = "llama3.2"
    # Empty: embeddings come from the bundled all-MiniLM-L6-v2 run locally.
    embedding_model: str = ""
    # May users name their own endpoint, and where may it point?
    user_endpoints: str = "public-only"
    # Networks a user endpoint may reach under public-only even though they are private.
    user_endpoint_allowlist: tuple[str, ...] = ()
    request_timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    # Time allowed between two streamed chunks before the request counts as hung.
    read_timeout_s: float = 60.0
    retries: int = 2
    # Index message embeddings in the background for smart search (the local model, about 150 MB
    # of memory, is loaded at the first message to index, not at start).
    index_embeddings: bool = True
    # A running job's lease: renewed every third of it; a job whose worker died is taken over by
    # another once it runs out.
    job_lease_s: float = 30.0


KNOWN_KEYS = frozenset(AIConfig.__dataclass_fields__)


def _url(key: str, v: Any) -> str:
    url = as_str(key, v)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(key, "must start with http:// or https://")
    return url.rstrip("/")


def _choice(key: str, v: Any, choices: tuple[str, ...]) -> str:
    s = as_str(key, v)
    if s not in choices:
        raise ConfigError(key, f"expected one of {', '.join(choices)}, got {s!r}")
    return s


def build_ai_config(raw: Any) -> AIConfig:
    """Validate the raw `[ai]` table (file merged with environment)."""
    if not isinstance(raw, dict):
        raise ConfigError("ai", "expected a table")
    kw: dict[str, Any] = {}
    for k, v in raw.items():
        key = f"ai.{k}"
        if k not in KNOWN_KEYS:
            raise ConfigError(key, "unknown ai key")
        if k in ("enabled", "index_embeddings"):
            kw[k] = as_bool(key, v)
        elif k == "endpoint":
            kw[k] = _url(key, v) if v not in (None, "") else None
        elif k == "token":
            kw[k] = as_str(key, v) if v not in (None, "") else None
        elif k == "api_style":
            kw[k] = _choice(key, v, API_STYLES)
        elif k == "user_endpoints":
            kw[k] = _choice(key, v, USER_ENDPOINT_POLICIES)
        elif k == "user_endpoint_allowlist":
            kw[k] = as_cidr_list(key, v)
        elif k.endswith("_timeout_s") or k == "job_lease_s":
            kw[k] = as_float(key, v)
        elif k == "retries":
            if isinstance(v, bool) or not str(v).isdigit() or int(v) > 10:
                raise ConfigError(key, "expected an integer from 0 to 10")
            kw[k] = int(v)
        elif k == "embedding_model":
            kw[k] = v if isinstance(v, str) else as_str(key, v)
        else:
            kw[k] = as_str(key, v)
    return AIConfig(**kw)
