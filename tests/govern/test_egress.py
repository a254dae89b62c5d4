"""Egress: nothing outside is reachable by default; the `egress_allow` setting opens host names,
sub-domains, addresses and networks (with ports); link-local and cloud-metadata destinations stay
refused whatever it lists; and every refusal is audited, without the URL's password.

Resolution is real: the tests use literal addresses and `localhost`, which resolve offline; only
the DNS-rebinding test puts a hostile resolver in place of `socket.getaddrinfo`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from manara.config import Settings
from manara.govern import audit
from manara.govern.egress import (
    EgressDenied,
    check_egress,
    evaluate,
    forbidden_reason,
    host_matches,
    parse_rule,
    redact,
)
from manara.workspace import Workspace

LOCALHOST = ["127.0.0.1", "::1"]  # what `localhost` may resolve to, depending on the machine


def allowing(ws: Workspace, *entries: str) -> Workspace:
    """The same workspace (same database) with `egress_allow` set to `entries`."""
    return Workspace(ws.settings.model_copy(update={"egress_allow": list(entries)}))


def check(ws: Workspace, url: str) -> None:
    check_egress(ws, url, actor="alice", tenant="default", purpose="pipeline orders: source http")


def denied_events(ws: Workspace) -> list[dict[str, Any]]:
    return audit.query(ws.engine, action="egress.denied")


# --- deny by default ---------------------------------------------------------------------------


def test_nothing_is_reachable_by_default(ws: Workspace) -> None:
    assert ws.settings.egress_allow == []
    for url in ("https://erp.example.ma/api", "http://127.0.0.1:8000/", "http://localhost/"):
        with pytest.raises(EgressDenied, match="egress_allow setting is empty") as err:
            check(ws, url)
        assert err.value.status == 403
        assert err.value.problem()["type"].endswith("/egress-denied")
    events = denied_events(ws)
    assert [e["target"] for e in events] == [
        "http://localhost/",
        "http://127.0.0.1:8000/",
        "https://erp.example.ma/api",
    ]
    assert all(
        e["outcome"] == "denied" and e["actor"] == "alice" and e["tenant"] == "default" for e in events
    )
    assert audit.verify(ws.engine).ok


# --- what the allow-list opens -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["localhost"], "http://localhost:8000/x"),  # exact host name, any port
        (["LOCALHOST."], "https://Localhost./"),  # case and a final dot do not matter
        (["localhost:8443"], "https://localhost:8443/"),  # host name with its port
        (LOCALHOST, "http://localhost:8000/"),  # all of the name's addresses are allowed
        (["127.0.0.1"], "http://127.0.0.1:9000/"),  # an address
        (["127.0.0.1:5432"], "postgresql://manara:secret@127.0.0.1/db"),  # scheme's default port
        (["127.0.0.0/8"], "mqtt://127.0.0.2"),  # an IPv4 network
        (["0.0.0.0/0"], "nats://127.0.0.1:4222"),  # everything IPv4 (but the forbidden)
        (["::1"], "https://[::1]/"),  # an IPv6 address
        (["[::1]:443"], "https://[::1]/"),  # IPv6 with a port
        (["::/64"], "opc.tcp://[::1]/server"),  # an IPv6 network
        (["[::/64]:4840"], "opc.tcp://[::1]:4840/"),  # an IPv6 network with a port
        (["127.0.0.1"], "http://[::ffff:127.0.0.1]/"),  # an IPv4-mapped address is the IPv4 address
        (["127.0.0.1:4222"], "tls://127.0.0.1:4222"),
    ],
)
def test_allowed(ws: Workspace, entries: list[str], url: str) -> None:
    check(allowing(ws, *entries), url)
    assert denied_events(ws) == []  # allowed checks are not audited


def test_evaluate_returns_the_checked_addresses() -> None:
    dest = evaluate(LOCALHOST, "https://localhost:8443/api")
    assert (dest.scheme, dest.host, dest.port) == ("https", "localhost", 8443)
    assert dest.addresses and set(dest.addresses) <= set(LOCALHOST)
    assert evaluate(["10.20.0.0/16:5432"], "postgresql+psycopg://u@10.20.3.4/db").addresses == ("10.20.3.4",)


@pytest.mark.parametrize(
    ("entries", "url", "reason"),
    [
        (["erp.example.ma"], "http://localhost/", "allows this host name"),  # another name
        (["localhost:8443"], "http://localhost:8000/", "allows this host name"),  # another port
        (["127.0.0.1:443"], "http://127.0.0.1/", "allows this address at this port"),
        (["10.0.0.0/8"], "http://127.0.0.1/", "allows this address"),  # outside the network
        (["::1"], "http://127.0.0.1/", "allows this address"),  # another family
        (["127.0.0.1:4222"], "tls://127.0.0.1", "without a port"),  # no port, no default: no port rule
    ],
)
def test_not_allowed(ws: Workspace, entries: list[str], url: str, reason: str) -> None:
    with pytest.raises(EgressDenied, match=reason):
        check(allowing(ws, *entries), url)
    [event] = denied_events(ws)
    assert reason in event["detail"]["reason"] and event["detail"]["url"] == url


def test_wildcard_matches_sub_domains_only() -> None:
    assert host_matches("*.gov.ma", "finances.gov.ma")
    assert host_matches("*.gov.ma", "api.douane.gov.ma")  # any depth
    assert host_matches("*.gov.ma", "API.Finances.GOV.ma.")
    assert not host_matches("*.gov.ma", "gov.ma")  # not the domain itself
    assert not host_matches("*.gov.ma", "evilgov.ma")
    assert not host_matches("*.gov.ma", "gov.ma.evil.com")
    assert host_matches("erp.example.ma", "ERP.example.ma")
    assert not host_matches("erp.example.ma", "x.erp.example.ma")
    rule = parse_rule("*.gov.ma:443")
    assert rule.allows_name("a.gov.ma", 443) and not rule.allows_name("a.gov.ma", 80)
    assert parse_rule("*.المغرب").name == "*.xn--mgbc0a9azcg"  # international names, as IDNA


def test_wildcard_entry_allows_a_sub_domain_of_localhost(ws: Workspace) -> None:
    try:
        socket.getaddrinfo("api.localhost", 80)
    except OSError:
        pytest.skip("this resolver does not answer for sub-domains of localhost")
    check(allowing(ws, "*.localhost"), "https://api.localhost/")
    with pytest.raises(EgressDenied):
        check(allowing(ws, "*.localhost"), "https://localhost/")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("*", "not a valid host name"),
        ("", "not a valid host name"),
        ("erp.example.ma:0", "port '0'"),
        ("erp.example.ma:http", "port 'http'"),
        ("10.20.1.0/16", "host bits set"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("[fd00::1", "IPv6 entry"),
        ("[fd00::1]443", "IPv6 entry"),
        ("127.1", "non-standard form"),
        ("bad_-host..ma", "not a valid host name"),
    ],
)
def test_bad_entries_are_named(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_rule(entry)
    assert repr(entry) in str(err.value)


# --- refused whatever the allow-list says -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud-metadata address"),
        ("http://100.100.100.200/latest/meta-data/", "cloud-metadata address"),
        ("http://168.63.129.16/machine", "cloud-metadata address"),
        ("http://[fd00:ec2::254]/latest/", "cloud-metadata address"),
        ("http://169.254.10.1:8080/", "link-local address"),
        ("http://[fe80::1%25eth0]/", "link-local address"),
        ("http://[::ffff:169.254.169.254]/", "cloud-metadata address"),  # IPv4-mapped
        ("http://[64:ff9b::a9fe:a9fe]/", "carries 169.254.169.254"),  # NAT64
        ("http://[2002:a9fe:a9fe::1]/", "carries 169.254.169.254"),  # 6to4
        ("http://0.0.0.0:8000/", "unspecified address"),
        ("http://[::]:8000/", "unspecified address"),
        ("http://224.0.0.1/", "multicast"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud-metadata service"),
        ("http://metadata/computeMetadata/v1/", "cloud-metadata service"),
        ("http://instance-data./latest/", "cloud-metadata service"),
        ("http://2852039166/", "non-standard form"),  # 169.254.169.254 as one number
        ("http://0xa9fea9fe/", "non-standard form"),
        ("http://169.254.169.254.nip.io./", None),  # unresolvable offline, metadata online: refused
    ],
)
def test_forbidden_even_when_everything_is_allowed(ws: Workspace, url: str, reason: str | None) -> None:
    everything = allowing(ws, "0.0.0.0/0", "::/0", "metadata.google.internal", "metadata", "instance-data")
    if reason is None:  # only names that resolve could be allowed; this one must not, offline or not
        everything = allowing(ws, "0.0.0.0/0", "::/0")
    with pytest.raises(EgressDenied, match=reason) as err:
        check(everything, url)
    assert "refused" in err.value.detail
    [event] = denied_events(ws)
    assert event["detail"]["url"] == url and event["detail"]["reason"] == err.value.extra["reason"]


def test_forbidden_classes() -> None:
    import ipaddress

    assert forbidden_reason(ipaddress.ip_address("10.1.2.3")) is None
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1")) is None  # loopback: allowed when listed
    assert (
        forbidden_reason(ipaddress.ip_address("fd00:ec2::254")) == "fd00:ec2::254, a cloud-metadata address"
    )


def test_an_allowed_name_that_resolves_to_metadata_is_refused(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is allowed, but its answer points at the metadata service. A stand-in
    resolver plays the hostile DNS server (the code under test is not replaced)."""
    real = socket.getaddrinfo

    def hostile_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "erp.example.ma":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.0.5", port or 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port or 0)),
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hostile_dns)
    with pytest.raises(EgressDenied, match="resolves to 169.254.169.254, a cloud-metadata address"):
        check(allowing(ws, "erp.example.ma", "10.0.0.0/8"), "https://erp.example.ma/")
    # and by address, every answer must be allowed, not only the first
    with pytest.raises(EgressDenied, match=r"all of its addresses \(10.20.0.5, 169.254.169.254\)|metadata"):
        check(allowing(ws, "10.0.0.0/8"), "https://erp.example.ma/")
    assert len(denied_events(ws)) == 2


# --- URLs that are not what they seem ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://allowed.ma@evil.com/", "hides the real host"),
        ("https://allowed.ma:443@evil.com/", "hides the real host"),
        ("http://user:pw@allowed.ma/", "hides the real host"),  # no credentials in http(s) URLs
        ("mqtt://a@allowed.ma@evil.com/", "hides the real host"),  # a raw '@' in the credentials
        ("http://allowed.ma\\@evil.com/", "not a URL"),  # clients disagree on backslashes
        ("http://allowed.ma /", "not a URL"),
        ("http://allowed.ma\t.evil.com/", "not a URL"),
        ("postgresql://u@allowed.ma/db?host=evil.com", "PostgreSQL"),  # libpq takes host from the query
        ("postgresql://u@allowed.ma,evil.com/db", "not a valid host name"),  # several hosts
        ("http:///path", "no host"),
        ("http://:80/", "no host"),
        ("file:///etc/passwd", "no host"),
        ("allowed.ma", "not a URL"),
        ("allowed.ma:443", "not a URL"),
        ("javascript:alert(1)", "not a URL"),
        ("", "not a URL"),
        ("http://[allowed.ma]/", "not a URL"),
        ("http://allowed.ma:99999/", "not a URL"),
        ("http://%61llowed.ma/", "not a valid host name"),
    ],
)
def test_misleading_or_garbage_urls(ws: Workspace, url: str, reason: str) -> None:
    with pytest.raises(EgressDenied, match=reason):
        check(allowing(ws, "allowed.ma", "0.0.0.0/0"), url)
    [event] = denied_events(ws)
    assert event["action"] == "egress.denied" and event["detail"]["purpose"] == "pipeline orders: source http"


def test_audit_event_hides_the_password(ws: Workspace) -> None:
    url = "postgresql://manara:s3cr3t-pw@10.9.8.7:5432/erp?sslmode=require&password=qs-s3cr3t"
    with pytest.raises(EgressDenied) as err:
        check(allowing(ws, "127.0.0.1"), url)
    assert "s3cr3t" not in err.value.detail
    [event] = denied_events(ws)
    assert "s3cr3t" not in str(event)
    assert event["detail"] == {
        "url": "postgresql://manara:***@10.9.8.7:5432/erp?sslmode=require&password=%2A%2A%2A",
        "purpose": "pipeline orders: source http",
        "reason": "no entry of the egress_allow setting allows this address at this port",
    }
    assert event["target"] == event["detail"]["url"]
    assert "pw" not in redact("http://u:pw@[::1/")  # not even a URL: the password still goes


# --- the setting --------------------------------------------------------------------------------


def test_setting_from_toml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANARA_EGRESS_ALLOW", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    assert Settings(home=home).egress_allow == []
    (home / "manara.toml").write_text(
        'egress_allow = ["erp.example.ma:8443", "*.gov.ma", "10.20.0.0/16", "[fd00::1]:443"]\n', "utf-8"
    )
    assert Settings(home=home).egress_allow == [
        "erp.example.ma:8443",
        "*.gov.ma",
        "10.20.0.0/16",
        "[fd00::1]:443",
    ]
    monkeypatch.setenv(
        "MANARA_EGRESS_ALLOW", '["127.0.0.1", "fd00::/8"]'
    )  # a JSON list; it wins over the file
    assert Settings(home=home).egress_allow == ["127.0.0.1", "fd00::/8"]
    monkeypatch.setenv("MANARA_EGRESS_ALLOW", "[]")
    assert Settings(home=home).egress_allow == []
    assert Settings(home=home).redacted()["egress_allow"] == []


def test_bad_setting_is_refused_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANARA_EGRESS_ALLOW", '["erp.example.ma", "10.20.1.0/16"]')
    with pytest.raises(ValidationError, match="egress_allow entry '10.20.1.0/16'"):
        Settings(home=tmp_path)
    monkeypatch.setenv("MANARA_EGRESS_ALLOW", "erp.example.ma,10.20.0.0/16")  # must be JSON
    with pytest.raises(SettingsError, match="egress_allow"):
        Settings(home=tmp_path)
