"""Which network addresses Alliance Radar may connect to when a stranger chooses the URL:
feed and page fetching in the ingestor (`services/ingestor/fetch.py`) and webhook delivery
in the aggregator (`services/aggregator/webhooks.py`) use these same functions.

A target must be a public internet address (not loopback, private, link-local, shared,
multicast, reserved, unspecified; IPv4 inside IPv6 too) unless a network the operator
allows covers it. The host is resolved here and the connection goes to a checked address
(Host header and TLS SNI carry the name), so a DNS answer that changes between check and
connect (rebinding) cannot move it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import httpx

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT


class AddressRefused(Exception):
    """A URL that may not be reached; `reason` is a short label (a metrics label)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_networks(value: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a settings value) as networks; ValueError on a bad one."""
    return tuple(ip_network(part.strip(), strict=False) for part in value.split(",")
                 if part.strip())


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` is not a public internet address, or None when it is."""
    if isinstance(ip, IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_refusal(embedded)
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link_local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("reserved", ip.is_reserved),
              ("shared", isinstance(ip, IPv4Address) and ip in _SHARED),
              ("private", ip.is_private),
              ("not_global", not ip.is_global))
    return next((name for name, hit in checks if hit), None)


def check_address(ip: IPAddress, allow: tuple[Network, ...]) -> str | None:
    """Why `ip` may not be reached, or None when it is public or `allow` covers it."""
    refusal = address_refusal(ip)
    if refusal is None or any(ip.version == net.version and ip in net for net in allow):
        return None
    return refusal


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """Where to connect for a checked URL: the URL with the checked address as host, and
    the Host header and TLS server name that keep the original name."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


async def checked_target(url: str, allow: tuple[Network, ...],
                         resolve: Resolver = system_resolve) -> Target:
    """The address to connect to for `url`, every address of its host checked;
    `AddressRefused` otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise AddressRefused("bad_url", f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise AddressRefused("bad_scheme", f"only http and https may be reached, not "
                             f"{parsed.scheme or 'a relative URL'!r}")
    host = parsed.host
    if not host:
        raise AddressRefused("bad_url", "URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused("dns_error", f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise AddressRefused("dns_error", f"{host} has no address")
    for address in addresses:
        refusal = check_address(ipaddress.ip_address(address), allow)
        if refusal is not None:
            where = host if literal is not None else f"{host} resolves to {address}, which"
            raise AddressRefused("forbidden_address", f"{where} is a {refusal} address; "
                                 "refused")
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    if literal is None or literal.version == 4:
        headers = {"Host": host_header}
    else:
        headers = {"Host": f"[{host}]" if parsed.port is None else f"[{host}]:{port}"}
    extensions = {"sni_hostname": host} if parsed.scheme == "https" and literal is None \
        else {}
    return Target(parsed.copy_with(host=addresses[0]), headers, extensions)
