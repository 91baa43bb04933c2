"""The [plugins] configuration table and application service registration files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from homeserver.appservice.registration import parse_registration
from homeserver.config import build_config
from homeserver.config_values import ConfigError

GOOD_AS = ("id: b\nurl: http://127.0.0.1:9000\nas_token: a\nhs_token: h\nsender_localpart: bot\n"
           "namespaces:\n  users:\n    - exclusive: true\n      regex: '@b_.*:x'\n")


def test_defaults_and_values() -> None:
    assert build_config({}).plugins.enabled is False
    cfg = build_config({"plugins": {"enabled": "true", "memory_mb": "128", "hook_timeout_s": 2,
                                    "webhook_ip_allowlist": "127.0.0.0/8, 10.0.0.0/8",
                                    "server_url": "http://127.0.0.1:8008"}}).plugins
    assert (cfg.enabled, cfg.memory_mb, cfg.hook_timeout_s) == (True, 128, 2.0)
    assert cfg.webhook_ip_allowlist == ("127.0.0.0/8", "10.0.0.0/8")


@pytest.mark.parametrize("table, key", [
    ({"nope": 1}, "plugins.nope"),
    ({"enabled": "maybe"}, "plugins.enabled"),
    ({"memory_mb": 0}, "plugins.memory_mb"),
    ({"memory_mb": True}, "plugins.memory_mb"),
    ({"hook_timeout_s": "soon"}, "plugins.hook_timeout_s"),
    ({"webhook_ip_allowlist": ["not a network"]}, "plugins.webhook_ip_allowlist"),
    ({"server_url": "ftp://x"}, "plugins.server_url"),
    ({"app_service_config_files": ["/nonexistent.yaml"]}, "plugins.app_service_config_files"),
    ({"app_service_config_files": 5}, "plugins.app_service_config_files"),
])
def test_bad_values_name_their_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config({"plugins": table})
    assert e.value.key == key


def test_registration_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_AS)
    cfg = build_config({"plugins": {"app_service_config_files": [str(good)]}}).plugins
    assert cfg.app_service_config_files == (str(good),)
    with pytest.raises(ConfigError, match="unique"):
        build_config({"plugins": {"app_service_config_files": [str(good), str(good)]}})
    reg = parse_registration({"id": "b", "url": None, "as_token": "a", "hs_token": "h", "sender_localpart": "s",
                              "namespaces": {"users": [{"exclusive": True, "regex": "@b_.*:x"}],
                                             "aliases": [{"exclusive": False, "regex": "#b_.*:x"}]}}, "f")
    assert reg.is_user("@b_1:x") and reg.is_user("@b_1:x", exclusive_only=True)
    assert not reg.is_user("@b_1:xy")  # whole-ID match
    assert reg.is_alias("#b_1:x") and not reg.is_alias("#b_1:x", exclusive_only=True)
    assert (reg.receive_ephemeral, reg.protocols) == (False, ())
    base = {"id": "b", "as_token": "a", "hs_token": "h", "sender_localpart": "s"}
    reg = parse_registration({**base, "receive_ephemeral": True, "protocols": ["irc"]}, "f")
    assert (reg.receive_ephemeral, reg.protocols) == (True, ("irc",))
    assert parse_registration({**base, "de.sorunome.msc2409.push_ephemeral": True}, "f").receive_ephemeral


@pytest.mark.parametrize("raw, where", [
    ("[]", "expected a YAML mapping"),
    ("id: b\nas_token: a\nhs_token: h\n", "sender_localpart"),
    (GOOD_AS.replace("http://127.0.0.1:9000", "nowhere"), "url"),
    (GOOD_AS.replace("'@b_.*:x'", "'(unclosed'"), "regex"),
    (GOOD_AS.replace("exclusive: true", "exclusive: maybe"), "namespaces.users"),
    ("id: [unclosed", "bad.yaml"),
    (GOOD_AS + "receive_ephemeral: sometimes\n", "receive_ephemeral"),
    (GOOD_AS + "protocols: irc\n", "protocols"),
])
def test_bad_registrations(tmp_path: Path, raw: str, where: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(raw)
    with pytest.raises(ConfigError) as e:
        build_config({"plugins": {"app_service_config_files": [str(bad)]}})
    assert where in str(e.value)
