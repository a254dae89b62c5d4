"""An OPC UA server simulating a small plant controller, for the opcua source's tests (asyncua).

    .venv/bin/python scripts/opcua_test_server.py --port 48400 --pidfile /tmp/opcua.pid [--cert-dir DIR]

Endpoint opc.tcp://127.0.0.1:PORT/manara/ (loopback only). The one port offers two endpoints:

    None                              no message security: anonymous, or `operator` / `manara`
    Basic256Sha256 / SignAndEncrypt   signed and encrypted: only `operator` / `opcua-test-pw`
                                      (anonymous sessions and the other password are refused)

The secure endpoint's certificate is self-signed, made with a new RSA key at every start-up
(application URI `urn:manara:test-plant:server`; DNS localhost and the host name; IP 127.0.0.1).
The server writes it (server.der, server.pem, and its key server.key.pem) to the folder --cert-dir,
else $MANARA_TEST_OPCUA_CERT_DIR, else the pidfile's folder, else <tmp>/manara-opcua-PORT, and
prints its path. A client can also take it from the endpoints (GetEndpoints over the None
endpoint), as the tests do. The server keeps no trust list: any client certificate is accepted if
it is valid now and holds the client's application URI.

Namespace `urn:manara:test-plant` (index 2), one object `Line1` whose variables have stable string
node ids:

    ns=2;s=Line1.Temperature  Double   °C, a sine of period 5 s, changes every 100 ms
    ns=2;s=Line1.Pressure     Double   bar, a cosine of period 8 s, changes every 100 ms
    ns=2;s=Line1.Counter      Int64    +1 every 100 ms
    ns=2;s=Line1.Running      Boolean  True for 3 s, False for 3 s, …
    ns=2;s=Line1.Status       String   "تشغيل / en marche" or "توقف / à l'arrêt", follows Running
    ns=2;s=Line1.Setpoint     Double   writable by clients (tests write it to make a known change)
    ns=2;s=Line1.Limits       Range    a structure (ExtensionObject), which the source quarantines

The values are deterministic: tick n (every 100 ms since the start) gives the same values on every
run. The server runs until SIGTERM or SIGINT, then exits cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import tempfile
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAMESPACE = "urn:manara:test-plant"
SERVER_URI = "urn:manara:test-plant:server"
TICK_S = 0.1
USERS = {"operator": "manara"}  # on the None endpoint (besides anonymous sessions)
SECURE_USERS = {"operator": "opcua-test-pw"}  # on the signed and encrypted endpoint (only them)


class Users(UserManager):
    """On the None endpoint: anonymous sessions or `operator` / `manara`; on the secure endpoint:
    `operator` / `opcua-test-pw` only. Anything else is refused (BadUserAccessDenied)."""

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:  # fmt: skip
        # `certificate` is the secure channel's client certificate: empty on the None endpoint (the
        # server accepts no X509 identity tokens, so it is never a user's certificate)
        if certificate:
            if username is not None and SECURE_USERS.get(username) == password:
                return User(role=UserRole.User, name=username)
            return None
        if username is None:  # anonymous (identity tokens are anonymous or user name only)
            return User(role=UserRole.User)
        if USERS.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def make_certificate(folder: Path) -> Path:
    """A new self-signed server certificate and key in `folder`: server.der (returned), server.pem,
    server.key.pem."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Manara test plant controller"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Manara tests")])  # fmt: skip
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(SERVER_URI),
                    *(x509.DNSName(host) for host in dict.fromkeys(["localhost", socket.gethostname()])),
                    x509.IPAddress(IPv4Address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / "server.key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path = folder / "server.der"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return path


def values(tick: int) -> dict[str, Any]:
    running = (tick // 30) % 2 == 0
    return {
        "Temperature": round(60.0 + 15.0 * math.sin(2 * math.pi * tick / 50), 3),
        "Pressure": round(2.5 + 0.2 * math.cos(2 * math.pi * tick / 80), 4),
        "Counter": tick,
        "Running": running,
        "Status": "تشغيل / en marche" if running else "توقف / à l'arrêt",
    }


TYPES = {
    "Temperature": ua.VariantType.Double,
    "Pressure": ua.VariantType.Double,
    "Counter": ua.VariantType.Int64,
    "Running": ua.VariantType.Boolean,
    "Status": ua.VariantType.String,
}


async def serve(port: int, cert_dir: Path, stop: asyncio.Event) -> None:
    server = Server(user_manager=Users())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/manara/")
    server.set_server_name("Manara test plant controller")
    await server.set_application_uri(SERVER_URI)
    cert = make_certificate(cert_dir)
    await server.load_certificate(str(cert))
    await server.load_private_key(str(cert_dir / "server.key.pem"))
    print(f"opcua test server: certificate {cert} (and {cert.with_suffix('.pem')})", flush=True)
    server.set_security_policy(
        [ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    )
    # a client certificate must be valid now and hold the client's application URI (no trust list)
    server.set_certificate_validator(
        CertificateValidator(
            CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        )
    )
    server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
    ns = await server.register_namespace(NAMESPACE)
    line = await server.nodes.objects.add_object(
        ua.NodeId.from_string(f"ns={ns};s=Line1"), ua.QualifiedName("Line1", ns)
    )
    nodes = {}
    for name, value in values(0).items():
        nodes[name] = await line.add_variable(
            ua.NodeId.from_string(f"ns={ns};s=Line1.{name}"),
            ua.QualifiedName(name, ns),
            value,
            varianttype=TYPES[name],
        )
    setpoint = await line.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=Line1.Setpoint"),
        ua.QualifiedName("Setpoint", ns),
        65.0,
        varianttype=ua.VariantType.Double,
    )
    await setpoint.set_writable()
    await line.add_variable(
        ua.NodeId.from_string(f"ns={ns};s=Line1.Limits"), ua.QualifiedName("Limits", ns), ua.Range(Low=0.0, High=120.0),
        varianttype=ua.VariantType.ExtensionObject,
    )  # fmt: skip
    async with server:
        loop = asyncio.get_running_loop()
        start, tick = loop.time(), 0
        while not stop.is_set():
            tick += 1
            previous = values(tick - 1)
            for name, value in values(tick).items():
                if value != previous[name]:
                    await nodes[name].write_value(ua.Variant(value, TYPES[name]))
            with contextlib.suppress(TimeoutError):  # the next tick on the clock: ticks do not drift
                await asyncio.wait_for(stop.wait(), max(0.0, start + (tick + 1) * TICK_S - loop.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=48400)
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--cert-dir", type=Path, help="where to write the server certificate (see above)")
    args = parser.parse_args()
    cert_dir = args.cert_dir or (
        Path(os.environ["MANARA_TEST_OPCUA_CERT_DIR"]) if os.environ.get("MANARA_TEST_OPCUA_CERT_DIR")
        else args.pidfile.resolve().parent if args.pidfile
        else Path(tempfile.gettempdir()) / f"manara-opcua-{args.port}"
    )  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n", encoding="ascii")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(args.port, cert_dir, stop)

    try:
        asyncio.run(run())
    finally:
        if args.pidfile:
            args.pidfile.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
