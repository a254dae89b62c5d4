"""Egress: connectors reach only the hosts that the workspace's `egress_allow` setting lists.

Outbound network is refused by default (a sovereign hub sends nothing out unless told to). An
entry of `egress_allow` is one of

- a host name, `erp.example.ma`, matched exactly (case-insensitive; international names too);
- sub-domains, `*.gov.ma`: any name ending in `.gov.ma`, at any depth, but not `gov.ma` itself;
- an IP address, `10.20.0.5`, `fd00::1`, or a network, `10.20.0.0/16`, `fd00::/8`;

each optionally with a port: `erp.example.ma:8443`, `*.gov.ma:443`, `10.20.0.0/16:5432`,
`[fd00::1]:443`, `[fd00::/8]:443` (an IPv6 address takes brackets when it has a port). A URL
without a port uses its scheme's default (https 443, mqtt 1883, opc.tcp 4840, …).

A URL is allowed when its host name matches a name entry, or when every address the name resolves
to matches an address entry; and, either way, the port matches when the entry names one. Some
destinations are refused whatever the list says, because no connector has a reason to reach them
and an attacker has every reason to: link-local addresses (169.254.0.0/16, fe80::/10), the
cloud-metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200, 168.63.129.16, …) and
their names (metadata.google.internal, instance-data, …), and addresses that are no single host
(0.0.0.0, ::, multicast, broadcast). Every address a host name resolves to is checked, so an allowed
name whose DNS answer points at the metadata service is refused too.

Refusals are audited (`egress.denied`, outcome "denied"); allowed checks are not (a connector checks
its URL on every run: auditing each would bury the events that matter).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

from manara.errors import Forbidden
from manara.govern import audit

if TYPE_CHECKING:
    from collections.abc import Iterable

    from manara.workspace import Workspace

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressDenied(Forbidden):
    type, title, status = "egress-denied", "Outbound connection not allowed", 403


DEFAULT_PORTS = {
    "http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "ftps": 990, "sftp": 22, "ssh": 22,
    "mqtt": 1883, "mqtts": 8883, "nats": 4222, "amqp": 5672, "amqps": 5671,
    "kafka": 9092, "opc.tcp": 4840, "modbus": 502, "postgresql": 5432, "postgres": 5432,
    "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521, "redis": 6379, "rediss": 6379,
    "ldap": 389, "ldaps": 636, "smtp": 25, "smtps": 465,
}  # fmt: skip

METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean…
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud (classic)
    )
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
# credentials passed in the URL of these schemes are a classic way to disguise the real host
_NO_USERINFO = frozenset({"http", "https", "ws", "wss"})
# libpq reads these from the query string, and they override the host of the URL
_PG_HOST_PARAMS = frozenset({"host", "hostaddr", "port", "service", "servicefile"})
_SECRET_PARAM = re.compile(r"pass|secret|token|key|auth|sig|credential", re.IGNORECASE)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


# --- the allow-list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One `egress_allow` entry: a host name, sub-domains (`*.` suffix) or a network; maybe a port."""

    name: str | None = None  # ASCII, lower case; "*.gov.ma" for sub-domains
    network: IPNetwork | None = None
    port: int | None = None

    def allows_name(self, host: str, port: int | None) -> bool:
        return self.name is not None and host_matches(self.name, host) and self._port_ok(port)

    def allows_address(self, addr: IPAddress, port: int | None) -> bool:
        return (
            self.network is not None
            and addr.version == self.network.version
            and addr in self.network
            and self._port_ok(port)
        )

    def _port_ok(self, port: int | None) -> bool:
        return self.port is None or self.port == port


def parse_rule(entry: str) -> Rule:
    """An `egress_allow` entry as a rule; ValueError, naming the entry, when it is not one."""
    text = entry.strip().lower()
    try:
        host, port = _split_port(text)
        if text.startswith("["):
            return Rule(network=_network(host), port=port)
        if "/" in host or _is_ip(host):
            return Rule(network=_network(host), port=port)
        if host.startswith("*."):
            return Rule(name="*." + normalise_name(host[2:]), port=port)
        return Rule(name=normalise_name(host), port=port)
    except ValueError as err:
        raise ValueError(
            f"egress_allow entry {entry!r}: {err} (expected a host name such as 'erp.example.ma', "
            "'*.gov.ma', an address or network such as '10.20.0.0/16', each optionally with ':PORT')"
        ) from None


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 entry is written '[ADDRESS]' or '[ADDRESS]:PORT'")
        return inside, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None  # a bare IPv6 address or network has no port


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def _network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise ValueError(str(err)) from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def normalise_name(name: str) -> str:
    """A host name in the form it is compared in: lower case, ASCII (IDNA), no final dot."""
    name = name.strip().lower().removesuffix(".")
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{name!r} is not a valid host name") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) and len(label) <= 63 for label in labels):
        raise ValueError(f"{name!r} is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # '127.1', '2130706433', '0x7f.1': resolvers read these as addresses; a name never ends so
        raise ValueError(f"{name!r} is an address in a non-standard form; write it as a plain address")
    return name


def host_matches(pattern: str, host: str) -> bool:
    """Whether a host name matches an entry's name: exactly, or, for `*.suffix`, as a sub-domain."""
    pattern, host = pattern.lower(), host.lower().removesuffix(".")
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".gov.ma"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


@lru_cache(maxsize=64)
def _rules(entries: tuple[str, ...]) -> tuple[Rule, ...]:
    return tuple(parse_rule(e) for e in entries)


# --- the check --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """An allowed destination: where the URL points and the addresses its host was checked at."""

    scheme: str
    host: str
    port: int | None
    addresses: tuple[str, ...]


class _Refused(Exception):
    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(reason)
        self.subject, self.reason = subject, reason


def evaluate(allow: Iterable[str], url: str) -> Destination:
    """Check `url` against the entries of `allow` (no audit): the destination, or EgressDenied.

    Host names are resolved with `socket.getaddrinfo` and every address is checked. A caller that
    wants to rule out a DNS answer changing between this check and its connection may connect to
    `Destination.addresses`.
    """
    try:
        return _evaluate(_rules(tuple(allow)), url)
    except _Refused as r:
        raise EgressDenied(f"egress to {r.subject} refused: {r.reason}", reason=r.reason) from None


def check_egress(ws: Workspace, url: str, *, actor: str, tenant: str | None, purpose: str) -> None:
    """Refuse (EgressDenied, and an `egress.denied` audit event) a URL the workspace may not reach.

    `purpose` says what wanted to connect (for example "pipeline orders: source http"); it is
    written in the audit event with the URL (its password hidden) and the reason. An allowed URL
    returns without an audit event: connectors check on every run, and auditing each allowed check
    would bury the refusals. See `evaluate` for the checks and for the resolved addresses.
    """
    try:
        evaluate(ws.settings.egress_allow, url)
    except EgressDenied as denied:
        shown = redact(url)
        audit.write(
            ws.engine,
            audit.EventFields(
                actor,
                "egress.denied",
                outcome="denied",
                tenant=tenant,
                target=shown,
                detail={"url": shown, "purpose": purpose, "reason": denied.extra["reason"]},
            ),
        )
        raise


def _evaluate(rules: tuple[Rule, ...], url: str) -> Destination:
    scheme, host, port = _parse(url)
    where = f"'{host}'" + (f" port {port}" if port is not None else "")
    if not rules:
        raise _Refused(
            where, "the workspace allows no outbound connections (its egress_allow setting is empty)"
        )
    addr = _address(host)
    by_name = False
    if addr is not None:
        addresses: list[IPAddress] = [addr]
    else:
        if host in METADATA_NAMES:
            raise _Refused(
                where, "it is the name of a cloud-metadata service, which connectors may never reach"
            )
        by_name = any(rule.allows_name(host, port) for rule in rules)
        if not by_name and not any(rule.network is not None for rule in rules):
            # not even a DNS query for a host that cannot be allowed (a lookup is itself egress)
            at = "at this port" if port is not None else "without a port"
            raise _Refused(where, f"no entry of the egress_allow setting allows this host name {at}")
        addresses = _resolve(host, port, where)
    for a in addresses:
        why = forbidden_reason(a)
        if why:
            target = f"it is {why}" if addr is not None else f"it resolves to {why}"
            raise _Refused(where, f"{target}, which connectors may never reach, whatever egress_allow lists")
    if by_name or all(any(rule.allows_address(a, port) for rule in rules) for a in addresses):
        return Destination(scheme, host, port, tuple(str(a) for a in addresses))
    at = (
        "at this port"
        if port is not None
        else "without a port (the URL names none; its scheme has no default)"
    )
    if addr is not None:
        raise _Refused(where, f"no entry of the egress_allow setting allows this address {at}")
    shown = ", ".join(str(a) for a in addresses)
    raise _Refused(
        where,
        f"no entry of the egress_allow setting allows this host name, or all of its addresses ({shown}), {at}",
    )


def _parse(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL; refuses what different clients could read differently."""
    shown = repr(redact(url))
    if not isinstance(url, str) or not url or any(c.isspace() or ord(c) < 32 or c in "\\\x7f" for c in url):
        raise _Refused(shown, "it is not a URL (it is empty or has spaces, control characters or '\\')")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or url[: len(scheme) + 3].lower() != scheme + "://":
            raise ValueError
        hostname, explicit_port = parts.hostname, parts.port
    except ValueError:
        raise _Refused(shown, "it is not a URL such as https://erp.example.ma/ (scheme://host)") from None
    if not hostname:
        raise _Refused(shown, "the URL has no host")
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and (scheme in _NO_USERINFO or not re.fullmatch(r"[\w.~!$&'()*+,;=:%-]*", userinfo)):
        raise _Refused(
            shown,
            "the URL has text before '@' in its host part, which hides the real host "
            f"('{hostname}'); give credentials as connector options, not in the URL",
        )
    base = scheme.split("+", 1)[0]
    if base in ("postgresql", "postgres") and any(
        k.lower() in _PG_HOST_PARAMS for k, _ in parse_qsl(parts.query, keep_blank_values=True)
    ):
        raise _Refused(shown, "the host and port of a PostgreSQL URL go before its path, not in its query")
    port = explicit_port if explicit_port is not None else DEFAULT_PORTS.get(base)
    if port == 0:
        raise _Refused(shown, "port 0 is not a destination")
    host = hostname.split("%", 1)[0] if ":" in hostname else hostname  # an IPv6 zone ('%25eth0') aside
    if not _is_ip(host):
        try:
            host = normalise_name(host)
        except ValueError as err:
            raise _Refused(shown, str(err)) from None
    return scheme, host, port


def _address(host: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    return _unmapped(addr)


def _unmapped(addr: IPAddress) -> IPAddress:
    """::ffff:10.0.0.1 is 10.0.0.1 to a dual-stack socket."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _resolve(host: str, port: int | None, where: str) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise _Refused(
            where, f"the host name cannot be resolved, so its addresses cannot be checked ({err})"
        ) from None
    found: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        found[_unmapped(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))] = None
    if not found:
        raise _Refused(where, "the host name resolves to no address")
    return list(found)


def forbidden_reason(addr: IPAddress) -> str | None:
    """Why no connector may reach `addr` (e.g. "169.254.169.254, a cloud-metadata address"), or None."""
    addr = _unmapped(addr)
    if addr in METADATA_ADDRESSES:
        return f"{addr}, a cloud-metadata address"
    if addr.is_link_local:
        return f"{addr}, a link-local address"
    if addr.is_unspecified or addr in _THIS_NETWORK:
        return f"{addr}, an unspecified address (it reaches this machine itself)"
    if addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255"):
        return f"{addr}, a multicast or broadcast address"
    if isinstance(addr, ipaddress.IPv6Address):  # IPv4 carried inside IPv6: 6to4, NAT64, compatible
        inner = addr.sixtofour
        if inner is None and (addr in _NAT64 or (addr in _V4_COMPATIBLE and int(addr) > 1)):
            inner = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        why = forbidden_reason(inner) if inner is not None else None
        if why:
            return f"{addr}, which carries {why}"
    return None


def redact(url: str) -> str:
    """The URL with its password and secret-looking query values hidden (for audit and errors)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        userinfo, at, hostport = netloc.rpartition("@")
        if at and ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_SECRET_PARAM.search(k) for k, _ in pairs):
                query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs])
        shown = parts._replace(netloc=netloc, query=query).geturl()
    except (ValueError, TypeError, AttributeError):
        shown = re.sub(r"(//[^/?#@]*?):[^/?#]*@", r"\1:***@", str(url))
    return shown[:1000]
