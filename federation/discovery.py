"""Server discovery: from a server name to the address, Host header and TLS name to use.

Server-server API §Resolving server names, in its order:
1. an IP literal: that address, the given port or 8448;
2. a host name with an explicit port: that name and port;
3. `https://<hostname>/.well-known/matrix/server` naming a delegated server, itself resolved by
   3.1 IP literal, 3.2 explicit port, 3.3 SRV `_matrix-fed._tcp`, 3.4 SRV `_matrix._tcp`
   (deprecated), 3.5 port 8448;
4. SRV `_matrix-fed._tcp.<hostname>`; 5. SRV `_matrix._tcp.<hostname>` (deprecated);
6. `<hostname>:8448`.
The TLS certificate is checked against the delegated name (or the server name), never against a
SRV target. Which addresses may be connected to is decided later, by the client's address policy.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeserver.protocol.ids import is_valid_server_name

DEFAULT_PORT = 8448
WELL_KNOWN_CACHE_S = 24 * 3600
WELL_KNOWN_MAX_CACHE_S = 48 * 3600
WELL_KNOWN_FAILURE_CACHE_S = 3600
WELL_KNOWN_CACHE_ENTRIES = 10_000

# name -> [(target, port)] in preference order; empty when there is no record.
SrvLookup = Callable[[str], Awaitable[list[tuple[str, int]]]]
# hostname -> (m.server value or None, seconds to cache the answer)
WellKnownFetch = Callable[[str], Awaitable[tuple[str | None, float]]]


@dataclass(frozen=True)
class Destination:
    """Where to send a request for one server name."""

    connect_host: str  # name (resolved and checked before connecting) or IP literal
    port: int
    host_header: str
    tls_name: str  # SNI and the name the certificate must match


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """(host, port or None); IPv6 literals lose their brackets. ValueError if not a server name."""
    if not is_valid_server_name(server_name):
        raise ValueError(f"{server_name!r} is not a valid server name")
    if server_name.startswith("["):
        end = server_name.index("]")
        host, rest = server_name[1:end], server_name[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = server_name.rpartition(":")
    if sep:
        return host, int(port)
    return server_name, None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _with_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


async def no_srv(name: str) -> list[tuple[str, int]]:
    return []


async def dns_srv_lookup(name: str) -> list[tuple[str, int]]:
    """SRV records via dnspython, lowest priority first, heaviest weight first within one."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    try:
        answer = await dns.asyncresolver.resolve(name, "SRV", lifetime=10)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.DNSException:
        return []
    records = sorted(answer, key=lambda r: (r.priority, -r.weight))
    out = []
    for r in records:
        target = str(r.target).rstrip(".")
        if target:  # "." means the service is decidedly not available
            out.append((target, int(r.port)))
    return out


class ServerResolver:
    """Resolves server names to Destinations, caching `.well-known` answers."""

    def __init__(self, well_known: WellKnownFetch, srv_lookup: SrvLookup = dns_srv_lookup,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch_well_known = well_known
        self.srv_lookup = srv_lookup
        self.clock = clock
        self._well_known: dict[str, tuple[float, str | None]] = {}

    async def resolve(self, server_name: str) -> Destination:
        host, port = split_server_name(server_name)
        if is_ip_literal(host):  # step 1
            return Destination(host, port or DEFAULT_PORT, _with_port(host, port), host)
        if port is not None:  # step 2
            return Destination(host, port, _with_port(host, port), host)
        delegated = await self._delegation(host)  # step 3
        if delegated is not None:
            d_host, d_port = split_server_name(delegated)
            if is_ip_literal(d_host):  # 3.1
                return Destination(d_host, d_port or DEFAULT_PORT, _with_port(d_host, d_port), d_host)
            if d_port is not None:  # 3.2
                return Destination(d_host, d_port, _with_port(d_host, d_port), d_host)
            return await self._by_srv(d_host)  # 3.3 - 3.5
        return await self._by_srv(host)  # steps 4 - 6

    async def _by_srv(self, host: str) -> Destination:
        for prefix in ("_matrix-fed._tcp.", "_matrix._tcp."):
            records = await self.srv_lookup(prefix + host)
            if records:
                target, port = records[0]
                return Destination(target, port, host, host)
        return Destination(host, DEFAULT_PORT, host, host)

    async def _delegation(self, host: str) -> str | None:
        now = self.clock()
        cached = self._well_known.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            value, ttl = await self.fetch_well_known(host)
        except Exception:  # noqa: BLE001 - any failure means "no delegation" (spec step 4)
            value, ttl = None, WELL_KNOWN_FAILURE_CACHE_S
        if value is not None and not is_valid_server_name(value):
            value, ttl = None, WELL_KNOWN_FAILURE_CACHE_S
        if len(self._well_known) >= WELL_KNOWN_CACHE_ENTRIES:
            self._well_known.pop(next(iter(self._well_known)))
        self._well_known[host] = (now + min(ttl, WELL_KNOWN_MAX_CACHE_S), value)
        return value


def cache_seconds(cache_control: str | None) -> float:
    """How long to keep a `.well-known` answer: its max-age (capped), else a day."""
    if cache_control:
        for part in cache_control.split(","):
            name, _, value = part.strip().partition("=")
            if name.lower() in ("no-store", "no-cache"):
                return 0.0
            if name.lower() == "max-age" and value.strip().isdigit():
                return float(min(int(value.strip()), WELL_KNOWN_MAX_CACHE_S))
    return float(WELL_KNOWN_CACHE_S)
