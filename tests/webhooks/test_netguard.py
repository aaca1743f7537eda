"""Which addresses webhooks may reach, and the admin's allowlist (pure)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.netguard import Allowlist, check_target, refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),  # Linux connects that to itself
        ("::", "an unspecified address"),
        ("0.1.2.3", "a reserved address"),  # "this network"
        ("10.20.30.40", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456:789a::1", "a private address"),  # IPv6 unique local
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.170.2", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("168.63.129.16", "a cloud metadata address"),  # Azure: in public space
        ("100.100.100.200", "a cloud metadata address"),
        ("192.0.0.192", "a cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%2", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("100.64.0.1", "a carrier-grade NAT (shared) address"),
        ("100.127.255.254", "a carrier-grade NAT (shared) address"),
        ("192.0.0.8", "a reserved address"),
        ("192.0.2.1", "a reserved address"),  # documentation
        ("198.18.0.1", "a reserved address"),  # benchmarking
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("2001:db8::1", "a reserved address"),
        ("fec0::1", "a site-local address"),
        ("::ffff:127.0.0.1", "an IPv4-mapped form of a loopback address"),
        ("::ffff:10.0.0.1", "an IPv4-mapped form of a private address"),
        ("::ffff:169.254.169.254", "an IPv4-mapped form of a cloud metadata address"),
        ("::127.0.0.1", "an IPv4-compatible form of a loopback address"),
        ("::8.8.8.8", "a deprecated IPv4-compatible address"),
        ("64:ff9b::7f00:1", "an NAT64 form of a loopback address"),
        ("2002:a00:1::1", "an 6to4 form of a private address"),
    ],
)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    assert reason == refusal(ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_not(address: str) -> None:
    assert refusal(ip_address(address)) is None


def test_the_allowlist_opens_endpoints_and_networks() -> None:
    allow = Allowlist.parse(["hooks.internal:8443", "127.0.0.1:9000", "[fd00::1]:443", "10.1.0.0/16", "192.168.0.7"])
    loopback, fd00, ten = ip_address("127.0.0.1"), ip_address("fd00::1"), ip_address("10.1.2.3")
    assert allow.allows("hooks.internal", 8443, ten)
    assert allow.allows("HOOKS.internal.", 8443, loopback)  # names compare as DNS does
    assert not allow.allows("hooks.internal", 443, ip_address("10.9.9.9"))  # another port
    assert allow.allows("localhost", 9000, loopback)  # an IP:port entry matches the address connected to
    assert not allow.allows("127.0.0.1", 9001, loopback)
    assert allow.allows("fd00::1", 443, fd00)
    assert allow.allows("db.internal", 5432, ten)  # a CIDR: every port
    assert allow.allows("x", 1, ip_address("192.168.0.7"))
    assert not allow.allows("x", 1, ip_address("192.168.0.8"))
    assert not Allowlist().allows("127.0.0.1", 9000, loopback)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("localhost", "neither host:port"),
        ("hooks.internal:", "neither host:port"),
        ("*.example.com:443", "not a host name"),
        ("http://hooks.internal:80", "neither host:port"),
        ("hooks.internal:0", "between 1 and 65535"),
        ("hooks.internal:70000", "between 1 and 65535"),
        ("[hooks.internal]:443", "only IPv6 addresses go in brackets"),
        ("10.0.0.1/8", "not a valid CIDR: 10.0.0.1/8 has host bits set"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("2130706433:80", "not an IPv4 address in dotted-quad form"),
    ],
)
def test_a_bad_allowlist_entry_is_an_error_naming_the_setting(entry: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match="COVEX_WEBHOOK_ALLOW") as caught:
        Allowlist.parse(["10.0.0.0/8", entry])
    assert repr(entry) in caught.value.message and problem in caught.value.message


def test_the_refusal_names_the_address_or_only_what_a_name_resolved_to() -> None:
    internal = ip_address("10.1.2.3")
    assert "10.1.2.3 is a private address; an admin can allow it with COVEX_WEBHOOK_ALLOW" == check_target(
        "10.1.2.3", 80, internal, Allowlist()
    )
    # The address behind an internal name is not shown to whoever reads the delivery log.
    assert "db.internal resolves to a private address; an admin can allow it with COVEX_WEBHOOK_ALLOW" == (
        check_target("db.internal", 80, internal, Allowlist())
    )
    assert check_target("db.internal", 80, internal, Allowlist.parse(["db.internal:80"])) is None
    assert check_target("example.com", 443, ip_address("93.184.215.14"), Allowlist()) is None
