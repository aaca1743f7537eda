"""Which network addresses webhooks may reach (pure, no I/O).

A webhook URL is chosen by whoever manages a model, and the delivery log shows them how
each attempt went; without a guard the dispatcher would be a port scanner and a proxy
into the server's own network (databases, cloud metadata services, admin consoles).
So by default only public unicast addresses are reached. ``refusal`` says why an
address is not; the dispatcher asks ``check_target`` for every address a host name
resolves to, at delivery time, and connects only to an address it checked (so a name
that resolves elsewhere later, DNS rebinding, gains nothing).

An admin opens specific internal targets with an ``Allowlist``
(``COVEX_WEBHOOK_ALLOW=hooks.internal:443,10.1.0.0/16``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from covex.domain.errors import InvalidInput

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

ALLOW_SETTING = "COVEX_WEBHOOK_ALLOW"

# Instance metadata services hand out cloud credentials. Some are link-local or private
# anyway; named here for a clearer message, and because 168.63.129.16 (Azure) and
# 192.0.0.192 (Oracle) are not in any range that ``ipaddress`` calls non-global.
_METADATA = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "168.63.129.16",  # Azure WireServer
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_PRIVATE = tuple(ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_CGNAT = ip_network("100.64.0.0/10")
# IETF protocol assignments; Python 3.11 counts only parts of it as non-global.
_IETF_V4 = ip_network("192.0.0.0/24")
# IPv6 forms that carry an IPv4 address: the connection may end up at that IPv4 address.
_NAT64 = ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ip_network("::/96")


def _embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, with the name of the form, if it is one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    low32 = IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return low32, "NAT64"
    if address in _IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback):
        return low32, "IPv4-compatible"
    return None


def refusal(address: IPAddress) -> str | None:
    """Why webhooks may not reach ``address`` by default (e.g. "a loopback address"), or None if public."""
    if isinstance(address, IPv6Address):
        address = IPv6Address(int(address))  # without a zone (%eth0), which says nothing of the range
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            ipv4, form = embedded
            reason = refusal(ipv4)
            if reason is not None:
                return f"an {form} form of {reason}"
            if form == "IPv4-compatible":  # deprecated since 2006; nothing legitimate uses it
                return "a deprecated IPv4-compatible address"
            return None
    # Most specific first, so the message names the range an admin would look for.
    checks: tuple[tuple[bool, str], ...] = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (any(address in n for n in _PRIVATE), "a private address"),
        (address in _CGNAT, "a carrier-grade NAT (shared) address"),
        (address in _IETF_V4, "a reserved address"),
        (isinstance(address, IPv6Address) and address.is_site_local, "a site-local address"),
        # Documentation, benchmarking, "this network", 240/4, broadcast, ...
        (address.is_reserved or address.is_private or not address.is_global, "a reserved address"),
    )
    return next((reason for matched, reason in checks if matched), None)


# -- the allowlist ----------------------------------------------------------------------------

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


def host_problem(host: str) -> str | None:
    """What is wrong with ``host`` (an IP address, or a DNS name in ASCII), or None.

    A last label that is a number (``2130706433``, ``0x7f.1``) makes URL parsers read the
    whole host as an IPv4 address in odd notation; only the dotted-quad form is accepted.
    """
    if not host:
        return "the host is empty"
    try:
        ip_address(host)
        return None
    except ValueError:
        pass
    name = host.lower()
    name = name[:-1] if name.endswith(".") else name
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return f"{host!r} is not a host name (letters, digits, '-' and '_' in dot-separated labels, ASCII: xn--...)"
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return f"{host!r} is not an IPv4 address in dotted-quad form (like 192.0.2.1) nor a host name"
    return None


def normalise_host(host: str) -> str:
    """The form hosts are compared in: lower case, no trailing dot, IP addresses canonical."""
    try:
        return str(ip_address(host))
    except ValueError:
        return host.lower().removesuffix(".")


@dataclass(frozen=True)
class Allowlist:
    """Internal targets an admin allows: ``host:port`` endpoints and whole networks (CIDRs).

    A ``host:port`` entry matches a URL naming that host and port, or a connection to
    that IP address and port; a CIDR matches connections to any port of its addresses.
    """

    endpoints: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str], setting: str = ALLOW_SETTING) -> Allowlist:
        """Entries like ``hooks.internal:8443``, ``[fd00::1]:443``, ``10.0.0.0/8``, ``127.0.0.1``.

        Raises ``InvalidInput`` naming the setting and the entry, so a typo stops the
        process at start rather than refusing deliveries later.
        """
        endpoints: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if _ip_or_none(entry.split("/")[0]) is None:
                endpoints.add(_endpoint(entry, setting))
                continue
            try:
                networks.append(ip_network(entry))  # strict: "10.0.0.1/8" is a mistake, not 10.0.0.0/8
            except ValueError as exc:
                raise InvalidInput(f"{setting}: {entry!r} is not a valid CIDR: {exc}") from None
        return cls(frozenset(endpoints), tuple(networks))

    def allows(self, host: str, port: int, address: IPAddress) -> bool:
        """True if the admin allowed connecting to ``address`` for a URL naming ``host`` and ``port``."""
        return (
            (normalise_host(host), port) in self.endpoints
            or (str(address), port) in self.endpoints
            or any(address in network for network in self.networks)
        )


def _endpoint(entry: str, setting: str) -> tuple[str, int]:
    usage = (
        f"{setting}: {entry!r} is neither host:port (like hooks.internal:8443 or [fd00::1]:443) "
        "nor a CIDR (like 10.0.0.0/8)"
    )
    match = re.fullmatch(r"\[([^\]]+)\]:([0-9]{1,5})|([^:\[\]]+):([0-9]{1,5})", entry)
    if match is None:
        raise InvalidInput(usage)
    host, port_text = (match[1], match[2]) if match[1] else (match[3], match[4])
    if match[1] is not None and not isinstance(_ip_or_none(host), IPv6Address):
        raise InvalidInput(f"{setting}: {entry!r}: only IPv6 addresses go in brackets")
    problem = host_problem(host)
    if problem is not None:
        raise InvalidInput(f"{setting}: {entry!r}: {problem}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise InvalidInput(f"{setting}: {entry!r}: the port must be between 1 and 65535")
    return normalise_host(host), port


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def check_target(host: str, port: int, address: IPAddress, allow: Allowlist) -> str | None:
    """None if a webhook for ``host``:``port`` may connect to ``address``; else why not, for the delivery log."""
    reason = refusal(address)
    if reason is None or allow.allows(host, port, address):
        return None
    # For a name, say what kind of address it resolved to but not which: the log is read by
    # model managers, and the addresses of internal names are none of their business.
    subject = f"{host} is" if _ip_or_none(host) is not None else f"{host} resolves to"
    return f"{subject} {reason}; an admin can allow it with {ALLOW_SETTING}"
