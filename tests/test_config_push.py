"""The [push] and [email] tables: defaults, file values, PARLEY_PUSH__*/PARLEY_EMAIL__* overrides
and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeserver.config import ConfigError, build_config, load_config


def test_defaults() -> None:
    cfg = load_config(None, env={})
    assert cfg.push.enabled and cfg.push.ip_range_allowlist == () and cfg.push.max_attempts == 12
    assert cfg.email.enabled is False and cfg.email.notif_delay_ms == 10 * 60 * 1000


def test_file_and_env(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[push]\nip_range_allowlist = ["10.0.0.0/8"]\nretry_base_ms = 5\n'
                 '[email]\nenabled = true\nsmtp_port = 2525\nnotif_from = "P <p@example.org>"\n')
    cfg = load_config(str(p), env={"PARLEY_PUSH__HTTP_TIMEOUT_S": "2.5", "PARLEY_EMAIL__REQUIRE_STARTTLS": "true",
                                   "PARLEY_PUSH__IP_RANGE_ALLOWLIST": "127.0.0.0/8,::1/128"})
    assert cfg.push.ip_range_allowlist == ("127.0.0.0/8", "::1/128")
    assert cfg.push.retry_base_ms == 5 and cfg.push.http_timeout_s == 2.5
    assert cfg.email.enabled and cfg.email.smtp_port == 2525 and cfg.email.require_starttls
    assert cfg.email.notif_from == "P <p@example.org>"


@pytest.mark.parametrize("raw,key", [
    ({"push": {"nope": 1}}, "push.nope"),
    ({"push": "x"}, "push"),
    ({"push": {"ip_range_allowlist": ["not a net"]}}, "push.ip_range_allowlist"),
    ({"push": {"http_timeout_s": 0}}, "push.http_timeout_s"),
    ({"push": {"max_attempts": 0}}, "push.max_attempts"),
    ({"email": {"smtp_port": 70000}}, "email.smtp_port"),
    ({"email": {"enabled": "maybe"}}, "email.enabled"),
    ({"email": {"notif_delay_ms": -1}}, "email.notif_delay_ms"),
    ({"email": {"require_starttls": True, "force_tls": True}}, "email.force_tls"),
])
def test_errors_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config(raw)
    assert e.value.key == key
