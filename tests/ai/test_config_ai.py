"""The [ai] configuration table: file values, PARLEY_AI__* overrides, clear errors."""

from __future__ import annotations

import pytest

from homeserver.config import load_config
from homeserver.config_values import ConfigError


def test_defaults_and_env_overrides(tmp_path: object) -> None:
    cfg = load_config(None, {})
    assert cfg.ai.endpoint is None and cfg.ai.user_endpoints == "public-only" and cfg.ai.index_embeddings
    cfg = load_config(None, {
        "PARLEY_AI__ENDPOINT": "http://ollama:11434/", "PARLEY_AI__API_STYLE": "ollama",
        "PARLEY_AI__TOKEN": "t0k", "PARLEY_AI__SUMMARY_MODEL": "qwen2.5:7b",
        "PARLEY_AI__USER_ENDPOINTS": "any", "PARLEY_AI__USER_ENDPOINT_ALLOWLIST": "10.8.0.0/16, 192.168.5.7",
        "PARLEY_AI__READ_TIMEOUT_S": "2.5", "PARLEY_AI__RETRIES": "0", "PARLEY_AI__INDEX_EMBEDDINGS": "false",
        "PARLEY_AI__JOB_LEASE_S": "4",
    })
    ai = cfg.ai
    assert (ai.endpoint, ai.api_style, ai.token, ai.summary_model) == ("http://ollama:11434", "ollama", "t0k",
                                                                       "qwen2.5:7b")
    assert ai.user_endpoints == "any" and ai.user_endpoint_allowlist == ("10.8.0.0/16", "192.168.5.7")
    assert ai.read_timeout_s == 2.5 and ai.retries == 0 and ai.index_embeddings is False
    assert ai.job_lease_s == 4.0 and load_config(None, {}).ai.job_lease_s == 30.0


@pytest.mark.parametrize("key,value", [
    ("ENDPOINT", "ollama:11434"), ("API_STYLE", "anthropic"), ("USER_ENDPOINTS", "private"),
    ("USER_ENDPOINT_ALLOWLIST", "not-a-net"), ("READ_TIMEOUT_S", "-1"), ("RETRIES", "many"), ("COLOUR", "x"),
    ("JOB_LEASE_S", "0"),
])
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, {f"PARLEY_AI__{key}": value})
    assert e.value.key == f"ai.{key.lower()}"
