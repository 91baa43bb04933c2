"""Configuration validation and the CLI's exit status for bad configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from homeserver.config import ConfigError, build_config, load_config


def test_defaults() -> None:
    cfg = load_config(None, env={})
    assert cfg.server_name == "localhost:8008"
    assert cfg.database.startswith("sqlite:///")
    assert cfg.redis_url is None and cfg.registration == "open"
    assert cfg.default_room_version == "12"


def test_file_and_env_override(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('server_name = "example.org"\nregistration = "closed"\n[rate_limits]\nmessages_burst = 5\n')
    cfg = load_config(str(p), env={"PARLEY_REGISTRATION": "token", "PARLEY_RATE_LIMITS__ENABLED": "false",
                                   "PARLEY_LISTENERS": "0.0.0.0:9000"})
    assert cfg.server_name == "example.org"
    assert cfg.registration == "token"
    assert cfg.rate_limits.enabled is False and cfg.rate_limits.messages_burst == 5
    assert cfg.listeners[0].host == "0.0.0.0" and cfg.listeners[0].port == 9000


@pytest.mark.parametrize("raw,key", [
    ({"server_name": "bad name!"}, "server_name"),
    ({"database": "mysql://x"}, "database"),
    ({"registration": "maybe"}, "registration"),
    ({"listeners": [{"host": "x", "port": 99999}]}, "listeners[0].port"),
    ({"rate_limits": {"enabled": "perhaps"}}, "rate_limits.enabled"),
    ({"rate_limits": {"nonsense_burst": 3}}, "rate_limits.nonsense_burst"),
    ({"default_room_version": "13"}, "default_room_version"),
    ({"log_level": "LOUD"}, "log_level"),
    ({"unknown_key": 1}, "unknown_key"),
    ({"redis_url": "http://x"}, "redis_url"),
])
def test_invalid_values_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config(raw)
    assert e.value.key == key


def test_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('registration = "sometimes"\n')
    proc = subprocess.run([sys.executable, "-m", "homeserver.cli", "--config", str(p), "serve"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "registration" in lines[0]


def test_cli_generate_config_and_register_user(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    out = subprocess.run([sys.executable, "-m", "homeserver.cli", "--config", str(cfg), "generate-config",
                          "--server-name", "chat.example"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and 'server_name = "chat.example"' in cfg.read_text()
    env = {"PARLEY_DATABASE": f"sqlite:///{tmp_path}/db.sqlite", "PARLEY_SIGNING_KEY_PATH": str(tmp_path / "k"),
           "PATH": "/usr/bin:/bin"}
    reg = subprocess.run([sys.executable, "-m", "homeserver.cli", "--config", str(cfg), "register-user", "admin",
                          "--password", "pw-admin-1", "--admin"], capture_output=True, text=True, timeout=60, env=env)
    assert reg.returncode == 0, reg.stderr
    assert "@admin:chat.example" in reg.stdout
    again = subprocess.run([sys.executable, "-m", "homeserver.cli", "--config", str(cfg), "register-user", "admin",
                            "--password", "x"], capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 1 and "M_USER_IN_USE" in again.stderr
    assert (tmp_path / "k").read_text().startswith("ed25519 ")
