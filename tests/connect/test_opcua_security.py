"""The OPC UA source's message security against the real asyncua test server
(scripts/opcua_test_server.py, which offers a None endpoint and a Basic256Sha256 SignAndEncrypt
endpoint with a self-signed certificate on the same port): a signed and encrypted session with a
user loads values, a wrong password or another server certificate fail the run with one line,
policy None still works anonymously, and certificate files are checked when the source is made.
The client certificates are made here, in each test's tmp_path."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline
from manara.connect.protocol import Context
from manara.connect.sources.opcua import CONNECTOR, thumbprint
from manara.errors import BadRequest, Forbidden
from manara.govern.principal import Principal
from manara.workspace import Workspace

COUNTER = "ns=2;s=Line1.Counter"
CLIENT_URI = "urn:manara:test:opcua-client"
USER, PASSWORD = "operator", "opcua-test-pw"  # accepted on the secure endpoint only
BASIC256SHA256 = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


def make_certificate(
    folder: Path,
    name: str,
    uris: tuple[str, ...] = (CLIENT_URI,),
    *,
    bits: int = 2048,
    days: int = 365,
    key_password: bytes | None = None,
    pem: bool = True,
) -> tuple[Path, Path]:
    """A self-signed application instance certificate and its key: (certificate path, key path)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2) if days > 0 else now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=days) if days > 0 else now - timedelta(days=1))
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                          data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )  # fmt: skip
    if uris:
        names = [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(
            x509.SubjectAlternativeName([*names, x509.DNSName("localhost")]), False
        )
    cert = builder.sign(key, hashes.SHA256())
    folder.mkdir(parents=True, exist_ok=True)
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    cert_path = folder / f"{name}.{'pem' if pem else 'der'}"
    cert_path.write_bytes(cert.public_bytes(encoding))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(key_password) if key_password else serialization.NoEncryption()
    )
    key_path = folder / f"{name}.key.{'pem' if pem else 'der'}"
    key_path.write_bytes(key.private_bytes(encoding, serialization.PrivateFormat.PKCS8, encryption))
    return cert_path, key_path


@pytest.fixture(scope="module")
def _client_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("pki"), "manara-client")


@pytest.fixture
def client_pki(tmp_path: Path, _client_pair: tuple[Path, Path]) -> dict[str, str]:
    """The client's certificate and key, copied into the folders pipelines may read (tmp_path)."""
    folder = tmp_path / "pki"
    folder.mkdir()
    cert, key = (shutil.copy(p, folder / p.name) for p in _client_pair)
    return {"certificate": str(cert), "private_key": str(key)}


_SERVER_DER: dict[str, bytes] = {}  # endpoint → certificate: asked once per test session


@pytest.fixture
def _server_der(opcua_url: str) -> bytes:
    """The test server's certificate, from its Basic256Sha256 SignAndEncrypt endpoint (GetEndpoints)."""
    from asyncua import Client, ua

    async def endpoints() -> list[Any]:
        return await Client(opcua_url, timeout=5).connect_and_get_server_endpoints()

    if opcua_url in _SERVER_DER:
        return _SERVER_DER[opcua_url]
    for ep in asyncio.run(endpoints()):
        if (
            ep.SecurityPolicyUri == BASIC256SHA256
            and ep.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt
        ):
            _SERVER_DER[opcua_url] = bytes(ep.ServerCertificate)
            return _SERVER_DER[opcua_url]
    why = f"the OPC UA test server at {opcua_url} offers no Basic256Sha256 SignAndEncrypt endpoint"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(
        f"{why}: it is an older one, restart it (scripts/services.sh stop; scripts/services.sh start)"
    )


@pytest.fixture
def server_cert(tmp_path: Path, _server_der: bytes) -> str:
    path = tmp_path / "pki" / "plant-server.der"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(_server_der)
    return str(path)


def spec(endpoint: str, name: str = "plant", **options: Any) -> str:
    opts = {"endpoint": endpoint, "nodes": [COUNTER], "sampling_ms": 100, "publishing_ms": 100,
            "max_seconds": 0.8, "idle_seconds": 1.0, **options}  # fmt: skip
    return f"""
name: {name}
source:
  type: opcua
  options: {json.dumps(opts)}
destination:
  dataset: {name}
"""


def secure(pki: dict[str, str], **options: Any) -> dict[str, Any]:
    return {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt", **pki,
            "username": USER, "password": PASSWORD, **options}  # fmt: skip


def counts(ws: Workspace, dataset: str = "plant") -> list[int]:
    table = ws.catalog.load_table(("default", dataset)).scan().to_arrow()
    return sorted(int(r["value"]) for r in table.to_pylist() if r["node"] == COUNTER)


def test_a_signed_and_encrypted_session_with_a_user_loads_values(
    ws: Workspace,
    operator: Principal,
    opcua_url: str,
    client_pki: dict[str, str],
    server_cert: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the test server accepts this password only on its Basic256Sha256 SignAndEncrypt endpoint
    caplog.set_level(logging.DEBUG)
    apply_pipeline(
        ws, operator, parse_spec(spec(opcua_url, **secure(client_pki, server_certificate=server_cert)))
    )
    result = run_pipeline(ws, operator, "plant")
    assert (result.status, result.rows_quarantined) == ("succeeded", 0), result.error
    values = counts(ws)
    assert result.rows_loaded == len(values) >= 3 and values == sorted(set(values))
    assert "accepted without check" not in caplog.text  # pinned: no warning

    # without server_certificate, the announced certificate is accepted, with a warning naming it
    caplog.clear()
    body = spec(opcua_url, name="unpinned", **secure(client_pki, security_mode="signandencrypt"))
    apply_pipeline(ws, operator, parse_spec(body))
    unpinned = run_pipeline(ws, operator, "unpinned")
    assert unpinned.status == "succeeded" and unpinned.rows_loaded >= 3, unpinned.error
    expected = thumbprint(Path(server_cert).read_bytes())
    assert f"certificate (SHA-1 {expected}) is accepted without check" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"password": "wrong-secret"},
         "the server refused the session (BadUserAccessDenied): check the username and password"),
        ({"username": None, "password": None},  # anonymous: refused on the secure endpoint
         "the server refused the session (BadUserAccessDenied): check anonymous login"),
        ({"server_certificate": "OTHER"}, "not server_certificate"),
        ({"security_policy": "Aes256_Sha256_RsaPss"},
         "the server does not offer security_policy Aes256_Sha256_RsaPss with security_mode SignAndEncrypt "
         "(it offers: Basic256Sha256 SignAndEncrypt, None)"),
        ({"security_mode": "Sign"}, "does not offer security_policy Basic256Sha256 with security_mode Sign"),
    ],
    ids=["wrong-password", "anonymous", "other-server-certificate", "policy-not-offered", "mode-not-offered"],
)  # fmt: skip
def test_refused_secure_sessions_fail_the_run_with_one_line_and_load_nothing(
    ws: Workspace,
    operator: Principal,
    opcua_url: str,
    client_pki: dict[str, str],
    server_cert: str,
    tmp_path: Path,
    options: dict[str, Any],
    expected: str,
) -> None:
    opts = secure(client_pki, **{"server_certificate": server_cert, **options})
    if opts["server_certificate"] == "OTHER":  # another self-signed certificate, e.g. an impostor's
        opts["server_certificate"] = str(make_certificate(tmp_path / "other", "impostor")[0])
    opts = {k: v for k, v in opts.items() if v is not None}
    apply_pipeline(ws, operator, parse_spec(spec(opcua_url, **opts)))
    result = run_pipeline(ws, operator, "plant")
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith(f"opcua source: {opcua_url}: ") and expected in result.error, result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    assert "wrong-secret" not in result.error and PASSWORD not in result.error
    assert (result.rows_in, result.rows_loaded, result.commits) == (0, 0, 0)
    assert not ws.catalog.table_exists(("default", "plant"))


def test_another_server_certificate_is_refused_by_the_channel_itself(
    ws: Workspace,
    operator: Principal,
    opcua_url: str,
    client_pki: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the endpoints (a server that lists none, or an impostor answering them), the secure
    channel is opened with the pinned certificate's key: a server without its private key cannot."""
    from asyncua import Client, ua

    async def no_endpoints(self: Client) -> list[Any]:
        raise ua.UaStatusCodeError(ua.StatusCodes.BadServiceUnsupported)

    monkeypatch.setattr(Client, "connect_and_get_server_endpoints", no_endpoints)
    other = str(make_certificate(tmp_path / "other", "impostor")[0])
    apply_pipeline(
        ws, operator, parse_spec(spec(opcua_url, timeout=2, **secure(client_pki, server_certificate=other)))
    )
    result = run_pipeline(ws, operator, "plant")
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith(f"opcua source: {opcua_url}: ") and "\n" not in result.error, result.error
    assert "(or the server does not hold the key of server_certificate)" in result.error
    assert (result.rows_in, result.rows_loaded) == (0, 0)

    # and without server_certificate, a source that cannot list the endpoints says so
    body = spec(opcua_url, name="unlisted", **secure(client_pki))
    apply_pipeline(ws, operator, parse_spec(body))
    unlisted = run_pipeline(ws, operator, "unlisted")
    assert unlisted.status == "failed" and unlisted.error is not None
    assert "cannot list the server's endpoints (BadServiceUnsupported" in unlisted.error, unlisted.error
    assert "set server_certificate" in unlisted.error


def test_policy_none_still_connects_anonymously_to_the_none_endpoint(
    ws: Workspace, operator: Principal, opcua_url: str, _server_der: bytes
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(opcua_url, security_policy="None")))
    result = run_pipeline(ws, operator, "plant")
    assert result.status == "succeeded" and result.rows_loaded >= 3, result.error
    # the secure endpoint's password is refused on the None endpoint
    apply_pipeline(ws, operator, parse_spec(spec(opcua_url, name="clear", username=USER, password=PASSWORD)))
    clear = run_pipeline(ws, operator, "clear")
    assert clear.status == "failed" and clear.error is not None and "BadUserAccessDenied" in clear.error
    assert PASSWORD not in clear.error


def test_certificate_options_are_checked_when_the_source_is_made(
    client_pki: dict[str, str], tmp_path: Path
) -> None:
    endpoint = "opc.tcp://127.0.0.1:4840/"
    pki = tmp_path / "pki"
    no_uri = make_certificate(pki, "no-uri", uris=())
    small = make_certificate(pki, "small", bits=1024)
    expired = make_certificate(pki, "expired", days=-1)
    locked = make_certificate(pki, "locked", key_password=b"key-secret", pem=False)
    other = make_certificate(pki, "other", uris=("urn:a", "urn:b"))
    unreadable = pki / "unreadable.pem"
    unreadable.write_bytes(b"not a certificate")
    ec_key = pki / "ec.key.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

    def made(**options: Any) -> Any:
        return CONNECTOR.create({"endpoint": endpoint, "nodes": [COUNTER], **options}, Context(tmp_dir=None))

    def refused(options: dict[str, Any], expected: str) -> None:
        with pytest.raises(BadRequest) as caught:
            made(**options)
        detail = caught.value.detail
        assert expected in detail and "\n" not in detail, detail
        assert "key-secret" not in detail and "wrong-key-pw" not in detail

    b256 = {"security_policy": "Basic256Sha256"}
    missing = str(pki / "missing.key.pem")
    refused({**b256, **client_pki, "private_key": missing}, f"option 'private_key': no file {missing}")
    refused(
        {**b256, "certificate": client_pki["certificate"]}, "Basic256Sha256 needs the client's private_key"
    )
    refused(b256, "needs the client's certificate and private_key")
    refused(
        {**b256, **client_pki, "certificate": str(unreadable)}, "is not an X.509 certificate (DER or PEM)"
    )
    refused(
        {**b256, **client_pki, "server_certificate": str(pki / "nope.der")},
        "option 'server_certificate': no file",
    )
    refused({**b256, **client_pki, "private_key": str(other[1])}, "is not the key of the certificate")
    refused({**b256, **client_pki, "private_key": str(ec_key)}, "is not the key of the certificate")
    refused(
        {**b256, "certificate": str(no_uri[0]), "private_key": str(no_uri[1])}, "holds no application URI"
    )
    refused({**b256, "certificate": str(small[0]), "private_key": str(small[1])},
            "has a 1024-bit RSA key: Basic256Sha256 needs an RSA key of 2048 to 4096 bits")  # fmt: skip
    refused({**b256, "certificate": str(expired[0]), "private_key": str(expired[1])}, "expired on")
    refused({**b256, "certificate": str(locked[0]), "private_key": str(locked[1])},
            "is encrypted: set private_key_password")  # fmt: skip
    refused({**b256, "certificate": str(locked[0]), "private_key": str(locked[1]),
             "private_key_password": "wrong-key-pw"}, "(or private_key_password is wrong)")  # fmt: skip
    refused({**b256, **client_pki, "application_uri": "urn:elsewhere"},
            f"'urn:elsewhere' is not in the certificate {client_pki['certificate']} (it holds {CLIENT_URI})")  # fmt: skip
    refused({**client_pki}, "certificate and private_key: used only with a security_policy other than None")
    refused({"security_policy": "Basic128Rsa15"}, "option 'security_policy'")
    refused({**b256, **client_pki, "security_mode": "Encrypt"}, "option 'security_mode'")
    refused({**b256, **client_pki, "security": "none"}, "security 'none' contradicts security_policy")

    # accepted: names in other spellings, an encrypted DER key with its password, an application URI
    made(**{**client_pki, "security_policy": "aes128sha256rsaoaep", "security_mode": "sign"})
    made(security_policy="http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss", **client_pki)
    made(**b256, certificate=str(locked[0]), private_key=str(locked[1]), private_key_password="key-secret")
    made(**b256, certificate=str(other[0]), private_key=str(other[1]), application_uri="urn:b")
    made(security="none")  # the former option, still read

    # the files must lie in the folders pipelines may read, like a files source's
    with pytest.raises(Forbidden, match="option 'certificate': .* is outside the folders pipelines may read"):
        CONNECTOR.create(
            {"endpoint": endpoint, "nodes": [COUNTER], **b256, **client_pki},
            Context(tmp_dir=None, file_roots=(tmp_path / "landing",)),
        )


def test_refusals_of_the_client_certificate_are_explained() -> None:
    from asyncua import ua

    source: Any = CONNECTOR.factory(
        CONNECTOR.parse_options({"endpoint": "opc.tcp://127.0.0.1:4840/", "nodes": [COUNTER]}),
        Context(tmp_dir=None),
    )
    why = source._why(ua.UaStatusCodeError(ua.StatusCodes.BadSecurityChecksFailed))
    assert why == (
        "opcua source: opc.tcp://127.0.0.1:4840/: the server refused the session (BadSecurityChecksFailed): "
        "set a security_policy and certificate"
    )
    source.options = source.options.model_copy(update={"security_policy": "Basic256Sha256"})
    why = source._why(ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted))
    assert (
        "the server refused the client certificate (BadCertificateUntrusted): the server must trust it" in why
    )
    why = source._why(ua.UaStatusCodeError(ua.StatusCodes.BadSecurityPolicyRejected))
    assert "refused security_policy Basic256Sha256 with security_mode SignAndEncrypt" in why
