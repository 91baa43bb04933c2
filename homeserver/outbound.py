"""Outbound connections to addresses named by other people (URL previews, federation peers).

A server name or URL chosen by someone else must not make this server talk to its own
network (server-side request forgery). The policy here is shared by every such caller:
- a name is resolved once and *every* address must be public, or inside the operator's
  allow-list; the connection then goes to one of those checked addresses (the caller keeps the
  name in the Host header and TLS SNI), so DNS rebinding between check and connect cannot move it;
- IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address or
  refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from homeserver.protocol.errors import MatrixError

# Ranges that embed an IPv4 address inside IPv6 (NAT64, 6to4) and would otherwise count as global.
_EMBEDDING = [ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16")]

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` (A and AAAA), in the order the system prefers."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise MatrixError(502, "M_UNKNOWN", "Could not resolve the host") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressPolicy:
    """Which peer addresses may be connected to: public ones, plus `allow_cidrs`."""

    def __init__(self, allow_cidrs: tuple[str, ...] = (), resolver: Resolver = system_resolve) -> None:
        self.allow = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]
        self.resolve = resolver

    def allowed_ip(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
        if any(addr.version == net.version and addr in net for net in self.allow):
            return True
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return self.allowed_ip(str(addr.ipv4_mapped))
            if any(addr in net for net in _EMBEDDING):
                return False
        return addr.is_global and not addr.is_multicast

    async def checked_address(self, host: str, port: int) -> str:
        """One address of `host` to connect to, after checking all of them; 403 if any is refused.

        An IP literal is checked as it is, without a lookup."""
        bare = host.strip("[]")
        try:
            ipaddress.ip_address(bare.split("%", 1)[0])
            ips = [bare]
        except ValueError:
            ips = await self.resolve(bare, port)
        if not ips or not all(self.allowed_ip(ip) for ip in ips):
            raise MatrixError(403, "M_FORBIDDEN", f"Connections to {host} are not allowed from this server")
        return ips[0].split("%", 1)[0]


def url_host(ip: str) -> str:
    """An address as it goes in a URL's authority: IPv6 in brackets."""
    return f"[{ip}]" if ":" in ip else ip
