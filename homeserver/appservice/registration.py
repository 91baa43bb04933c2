"""Application service registration files (Application Service API §Registration): YAML with
`id`, `url`, `as_token`, `hs_token`, `sender_localpart` and `namespaces` of users, aliases and
rooms, each a list of `{exclusive, regex}`; optional `receive_ephemeral` (Matrix 1.13; the
MSC2409 name `de.sorunome.msc2409.push_ephemeral` is accepted too) and `protocols` (the
third-party protocols the AS bridges). Parsed and checked at start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from homeserver.config_values import ConfigError


@dataclass(frozen=True)
class Namespace:
    regex: re.Pattern[str]
    exclusive: bool


@dataclass(frozen=True)
class AppService:
    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender_localpart: str
    users: tuple[Namespace, ...]
    aliases: tuple[Namespace, ...]
    rooms: tuple[Namespace, ...]
    rate_limited: bool = True
    receive_ephemeral: bool = False
    protocols: tuple[str, ...] = ()

    @staticmethod
    def _any(spaces: tuple[Namespace, ...], value: str, exclusive_only: bool = False) -> bool:
        return any(ns.regex.fullmatch(value) and (ns.exclusive or not exclusive_only) for ns in spaces)

    def is_user(self, user_id: str, exclusive_only: bool = False) -> bool:
        return self._any(self.users, user_id, exclusive_only)

    def is_alias(self, alias: str, exclusive_only: bool = False) -> bool:
        return self._any(self.aliases, alias, exclusive_only)

    def is_room(self, room_id: str) -> bool:
        return self._any(self.rooms, room_id)


def _namespaces(key: str, raw: Any) -> tuple[Namespace, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(key, "expected a list of {exclusive, regex}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("regex"), str) \
                or not isinstance(item.get("exclusive", False), bool):
            raise ConfigError(f"{key}[{i}]", "expected {exclusive: bool, regex: string}")
        try:
            out.append(Namespace(re.compile(item["regex"]), bool(item.get("exclusive", False))))
        except re.error as e:
            raise ConfigError(f"{key}[{i}].regex", str(e)) from None
    return tuple(out)


def parse_registration(raw: Any, where: str) -> AppService:
    if not isinstance(raw, dict):
        raise ConfigError(where, "expected a YAML mapping")
    for k in ("id", "as_token", "hs_token", "sender_localpart"):
        if not isinstance(raw.get(k), str) or not raw[k]:
            raise ConfigError(f"{where}: {k}", "is required (a non-empty string)")
    url = raw.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}: url", "must be an http(s) URL or null")
    ephemeral = raw.get("receive_ephemeral", raw.get("de.sorunome.msc2409.push_ephemeral", False))
    if not isinstance(ephemeral, bool):
        raise ConfigError(f"{where}: receive_ephemeral", "must be true or false")
    protocols = raw.get("protocols") or []
    if not isinstance(protocols, list) or not all(isinstance(p, str) and p for p in protocols):
        raise ConfigError(f"{where}: protocols", "expected a list of protocol names")
    ns = raw.get("namespaces") or {}
    if not isinstance(ns, dict):
        raise ConfigError(f"{where}: namespaces", "expected a mapping")
    return AppService(
        id=raw["id"], url=url.rstrip("/") if url else None, as_token=raw["as_token"], hs_token=raw["hs_token"],
        sender_localpart=raw["sender_localpart"], users=_namespaces(f"{where}: namespaces.users", ns.get("users")),
        aliases=_namespaces(f"{where}: namespaces.aliases", ns.get("aliases")),
        rooms=_namespaces(f"{where}: namespaces.rooms", ns.get("rooms")),
        rate_limited=raw.get("rate_limited", True) is not False,
        receive_ephemeral=ephemeral, protocols=tuple(protocols),
    )


def load_registrations(paths: tuple[str, ...]) -> list[AppService]:
    out: list[AppService] = []
    for p in paths:
        try:
            raw = yaml.safe_load(Path(p).read_text())
        except OSError as e:
            raise ConfigError("plugins.app_service_config_files", f"{p}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError("plugins.app_service_config_files", f"{p}: {e}") from None
        out.append(parse_registration(raw, p))
    ids = [a.id for a in out]
    tokens = [a.as_token for a in out]
    if len(set(ids)) != len(ids) or len(set(tokens)) != len(tokens):
        raise ConfigError("plugins.app_service_config_files", "ids and as_tokens must be unique")
    return out
