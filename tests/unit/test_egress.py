"""Webhook targets: SSRF refusal before any connection, allow-list, pinned delivery.

Every name goes through a stub resolver, and ``socket.create_connection`` is replaced
by a recorder: a refused target must raise before anything is sent.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from common.egress import CallbackRefusedError, check_callback_url, parse_allowlist, refusal
from common.webhooks import deliver
from tests.stub_dns import StubResolver

DNS = {
    "public.example": ["93.184.215.14"],
    "rebind.example": ["93.184.215.14", "10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "v6.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "localhost.": ["127.0.0.1"],
}


resolver = StubResolver(DNS)


@pytest.fixture
def connections(monkeypatch) -> list[tuple]:
    """Every connection attempt (none may happen for a refused target)."""
    made: list[tuple] = []

    def record(address, *args, **kwargs):
        made.append(address)
        raise ConnectionRefusedError("test: no connection allowed")

    monkeypatch.setattr(socket, "create_connection", record)
    return made


REFUSED = [
    "http://127.0.0.1/hook", "http://[::1]:8080/hook", "http://0.0.0.0/", "http://[::]/",
    "http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://localhost./",
    "http://169.254.169.254/latest/meta-data/", "http://metadata.example/",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://[fd00::1]/",
    "http://[fe80::1]/", "http://224.0.0.1/", "http://[ff02::1]/", "http://100.64.0.1/",
    "http://240.0.0.1/", "http://rebind.example/", "http://mapped.example/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_targets_are_refused_before_any_connection(url, connections):
    with pytest.raises(CallbackRefusedError) as info:
        deliver(url, b"{}", "secret", 1.0, (), resolver)
    assert info.value.code == "callback_url_refused" and info.value.http_status == 422
    assert connections == []


@pytest.mark.parametrize("url", ["ftp://public.example/", "http://user:pw@public.example/",
                                 "http:///nohost", "http://unknown.example/",
                                 "http://public.example:99999/"])
def test_malformed_or_unresolvable_urls_are_refused(url, connections):
    with pytest.raises(CallbackRefusedError):
        deliver(url, b"{}", "secret", 1.0, (), resolver)
    assert connections == []


def test_public_targets_pass_and_the_connection_goes_to_the_checked_address(connections):
    target = check_callback_url("https://v6.example/hook?x=1", (), resolver)
    assert target.port == 443 and target.path == "/hook?x=1"
    assert target.addresses == ("2606:2800:21f:cb07:6820:80da:af6b:8b2c",)
    with pytest.raises(Exception):  # noqa: B017 - the recorder refuses the connection
        deliver("http://public.example:8081/hook", b"{}", "secret", 1.0, (), resolver)
    assert connections == [("93.184.215.14", 8081)]  # pinned: no second lookup


def test_the_allowlist_admits_named_networks_only(connections):
    allow = parse_allowlist("127.0.0.1/32, 10.0.0.0/8")
    assert check_callback_url("http://127.0.0.1:9000/", allow, resolver).addresses == (
        "127.0.0.1",)
    assert check_callback_url("http://10.9.8.7/", allow, resolver).addresses == ("10.9.8.7",)
    for url in ("http://127.0.0.2/", "http://192.168.0.1/", "http://[::1]/"):
        with pytest.raises(CallbackRefusedError):
            check_callback_url(url, allow, resolver)
    with pytest.raises(ValueError, match="bad LIVENESS_WEBHOOK_ALLOWLIST entry"):
        parse_allowlist("10.0.0.0/8, not-a-network")


def test_refusal_reasons():
    assert refusal(ipaddress.ip_address("93.184.215.14")) is None
    assert refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert refusal(ipaddress.ip_address("169.254.169.254")) == "link-local"
    assert refusal(ipaddress.ip_address("::ffff:10.0.0.1")) == "private"
