"""Where webhooks may go: refusing server-side request forgery (SSRF).

A ``callback_url`` is chosen by the client, and the fusion worker POSTs the job there
from inside the deployment's network. Without a check a client could make the service
call its own Redis, a cloud metadata endpoint (``169.254.169.254``) or any internal
host. The rule (OWASP SSRF prevention cheat sheet):

- only ``http``/``https``, no credentials in the URL;
- the host name is resolved, and **every** address it resolves to must be public: not
  loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254/16``, ``fe80::/10``),
  unspecified (``0.0.0.0``, ``::``), multicast, reserved or otherwise non-global
  (``ipaddress``'s ``is_global``), IPv4-mapped IPv6 forms included;
- unless an operator lists it in ``LIVENESS_WEBHOOK_ALLOWLIST`` (CIDR networks), for a
  deployment that calls back inside its own network;
- the check runs at submission (HTTP 422 ``callback_url_refused``) and again at every
  delivery, on the addresses resolved then, and the connection goes to the checked
  address (no second lookup a DNS-rebinding attacker could answer differently).

Numeric spellings such as ``2130706433`` or ``0x7f.1`` resolve to the address they
denote and are refused like it. ``resolver`` arguments take a stub in tests, so a
refusal is checked before any connection and without DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from common.errors import LivenessError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``socket.getaddrinfo``-like: (host, port) → addresses as strings.
Resolver = Callable[[str, int], Sequence[str]]


class CallbackRefusedError(LivenessError):
    """The callback URL is not an allowed webhook target (HTTP 422)."""

    code = "callback_url_refused"
    http_status = 422


@dataclass(frozen=True)
class Target:
    """A checked webhook target: where to connect, and what to send as Host/SNI."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), via ``socket.getaddrinfo``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_allowlist(spec: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` → networks; ``ValueError`` names a bad entry."""
    networks = []
    for raw in spec.split(","):
        entry = raw.strip()
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"bad LIVENESS_WEBHOOK_ALLOWLIST entry {entry!r}: {exc}") from exc
    return tuple(networks)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public webhook target, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    if not address.is_global:
        return "not globally routable"
    return None


def check_address(text: str, allowlist: Sequence[IPNetwork]) -> IPAddress:
    """The address, or :class:`CallbackRefusedError` when it is refused and not allowed."""
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    why = refusal(address)
    if why is not None and not any(address in net for net in allowlist
                                   if net.version == address.version):
        raise CallbackRefusedError(
            f"callback_url resolves to a non-public address ({address}: {why}); webhooks go "
            "only to "
            "public addresses unless LIVENESS_WEBHOOK_ALLOWLIST names the network"
        )
    return address


def check_callback_url(url: str, allowlist: Sequence[IPNetwork],
                       resolver: Resolver = system_resolver) -> Target:
    """Resolve and check a callback URL; the :class:`Target` to connect to.

    Raises :class:`CallbackRefusedError` for a non-http(s) URL, credentials, a host
    that does not resolve, or any refused address (see the module docstring).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefusedError(f"callback_url is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefusedError("callback_url must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefusedError("callback_url must not contain credentials")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = list(resolver(host, port))
    except (OSError, UnicodeError) as exc:
        raise CallbackRefusedError(f"callback_url host {host!r} cannot be resolved") from exc
    if not addresses:
        raise CallbackRefusedError(f"callback_url host {host!r} resolves to no address")
    checked = [str(check_address(a, allowlist)) for a in addresses]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, tuple(checked))
