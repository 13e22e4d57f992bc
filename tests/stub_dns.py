"""A stub resolver for webhook-target tests: no DNS query is ever made.

``StubResolver(names)`` answers the host names it is given and numeric hosts the way C's
``inet_aton`` reads them (``2130706433``, ``0x7f.1``, ``127.1`` — spellings an attacker
uses), and raises ``socket.gaierror`` for anything else, as an unknown name would.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence


class StubResolver:
    """``resolver(host, port) -> addresses`` over a fixed table (``common.egress.Resolver``)."""

    def __init__(self, names: Mapping[str, Sequence[str]]) -> None:
        self.names = {k: list(v) for k, v in names.items()}

    def __call__(self, host: str, port: int) -> list[str]:
        if host in self.names:
            return self.names[host]
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            return [socket.inet_ntoa(socket.inet_aton(host))]
        except OSError:
            raise socket.gaierror(f"stub resolver: unknown host {host!r}") from None
