"""OPC UA source: the value changes of an industrial controller's variables (asyncua subscription).

    source:
      type: opcua
      options:
        endpoint: opc.tcp://plc-line1.usine.local:4840/
        nodes: ["ns=2;s=Line1.Temperature", "ns=2;s=Line1.Counter"]
        browse: ["ns=2;s=Line2"]             # and every variable below this object
        sampling_ms: 500                       # how often the server samples each variable
        publishing_ms: 1000                    # how often it sends the changes
        username: operator                     # optional; anonymous otherwise
        password: "${PLC_PASSWORD}"
        security_policy: Basic256Sha256        # optional; None (the default) otherwise
        security_mode: SignAndEncrypt          # or Sign
        certificate: /srv/manara/pki/manara-client.der    # the client's certificate (DER or PEM)
        private_key: /srv/manara/pki/manara-client.key.pem
        server_certificate: /srv/manara/pki/plc-line1.der # the server's, to trust only it
        max_seconds: 60                        # one run listens this long (see StreamOptions)

**Listening.** A run connects, checks every node, creates one subscription with a data-change
monitored item per variable and listens (see `manara.connect.stream`: until `max_seconds`,
`idle_seconds` or a stop). Each notification is written to the pipeline's spool on disk as it
arrives; the run loads the spool in order and commits the spool sequence number (`seq`) as the
cursor with the rows, so a notification is loaded once. A new subscription starts with each
variable's current value: the source remembers the last sample it spooled per node (source
timestamp, status, value; `opcua.last.json` beside the spool) and drops that first notification when
it is the same sample, so an unchanged value is not loaded again by every run. A lost connection is
re-established with backoff while the run lasts (the subscription is re-created); the changes that
happened while it was down are the server's to keep or lose (OPC UA data changes are not a durable
queue).

**Rows.** One row per data change, whatever the variable (a "long" time series), so that adding a
variable never changes the dataset's schema (which would pause the pipeline):

    node              string     the node id, e.g. "ns=2;s=Line1.Temperature" (namespace index form)
    name              string     its browse name, e.g. "Temperature" (read once per run)
    type              string     the OPC UA built-in type: Double, Int64, Boolean, String…; "Double[]"
                                 for an array; "Null" when the notification has no value
    value             double     numbers (every integer and float type) and booleans (1.0 / 0.0):
                                 `avg(value)`, plots and thresholds work on every numeric signal
    value_text        string     every value as text: strings and localized text as they are,
                                 integers exactly (an Int64 beyond 2^53 is exact here, rounded in
                                 `value`), doubles in their shortest exact form ("21.5", "NaN"),
                                 booleans "true"/"false", date-times ISO 8601 UTC, GUIDs, node ids,
                                 byte strings as base64, arrays as JSON
    status            string     the status code's name: "Good", "UncertainLastUsableValue",
                                 "BadSensorFailure"… (", Overflow" when the server's queue dropped
                                 values); a bad status usually comes with a null value
    source_timestamp  timestamp  UTC, µs: when the controller sampled the value (null if not sent)
    server_timestamp  timestamp  UTC, µs: when the OPC UA server saw it (null if not sent)
    received_at       timestamp  UTC, µs: when it reached Manara

A value that cannot be one row of these columns (a structure, i.e. an ExtensionObject, a
DataValue, a Variant of Variants, a DiagnosticInfo) goes to the quarantine with the reason, the
node and its text form.

**Errors.** An endpoint that does not answer, credentials the server refuses, a node id that does
not exist (or is not a variable), a browse parent without variables: the run fails before reading
anything, with one line naming the endpoint or the node. The endpoint's host goes through the
workspace's egress check when the pipeline is applied and at every run.

**Security.** `security_policy` None (the default) neither signs nor encrypts: use it only on a plant
network you trust. With Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss every message
is signed (`security_mode: Sign`) or signed and encrypted (`SignAndEncrypt`, the default), with the
client's application instance certificate and private key (`certificate`, `private_key`: DER or
PEM files, an RSA key of 2048 to 4096 bits; `private_key_password` for an encrypted key). OPC UA
names the client by the application URI in its certificate (a URI in its subjectAltName): it is
taken from there, or `application_uri` picks one of them. The server must trust that certificate
(on most servers: move it from the rejected to the trusted certificates after a first attempt).

The server is authenticated by its certificate: with `server_certificate` (its DER or PEM file,
obtained from its administrator), a server that presents any other certificate is refused, even if
it offers the same endpoint. Without it, the certificate the server announces in its endpoints is
accepted as it comes (the messages are encrypted, but a machine that impersonates the server on the
network is not detected) and a warning gives its SHA-1 thumbprint to pin it. The files are read
when the pipeline is applied and when each run starts, and must lie in the folders pipelines may
read (`$MANARA_HOME/landing` and the `file_roots` setting), like a files source's. A password (and
`private_key_password`) is never logged nor echoed: write it as `${ENV_VAR}` to keep it out of the
stored spec. With SignAndEncrypt the password travels in the encrypted channel; otherwise it is
encrypted with the server's certificate when the server asks for it, else sent in clear.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Coroutine, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from manara.connect.protocol import Chunk, Connector, Context, Cursor, rejects_table
from manara.connect.stream import Spool, SpooledSource, StreamOptions, spool_path
from manara.errors import BadRequest, ManaraError

if TYPE_CHECKING:
    from asyncua import Client, Node
    from asyncua.common.subscription import DataChangeNotif, Subscription

log = logging.getLogger("manara.connect.opcua")

SCHEMA = pa.schema(
    [
        pa.field("node", pa.string()),
        pa.field("name", pa.string()),
        pa.field("type", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("value_text", pa.string()),
        pa.field("status", pa.string()),
        pa.field("source_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("server_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
    ]
)
MAX_NODES = 10_000  # variables one pipeline may subscribe to
BROWSE_DEPTH = 8  # levels of objects and folders below a browse parent
PAYLOAD_LIMIT = 100_000  # characters of a quarantined value's text form
LAST_SAVE_S = 1.0  # the last samples per node are saved at most this often while listening
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NODE_ID_HINT = "e.g. ns=2;s=Line1.Temperature, ns=3;i=1001 or nsu=urn:plant;s=Line1.Temperature"
CLIENT_URI = "urn:manara:connect:opcua"  # the application URI of a session without security
CERT_FILE_LIMIT = 1 << 20  # bytes of a certificate or key file
# security_policy → asyncua's class (asyncua.crypto.security_policies)
POLICIES = {
    "Basic256Sha256": "SecurityPolicyBasic256Sha256",
    "Aes128_Sha256_RsaOaep": "SecurityPolicyAes128Sha256RsaOaep",
    "Aes256_Sha256_RsaPss": "SecurityPolicyAes256Sha256RsaPss",
}
KEY_BITS = (2048, 4096)  # the RSA key sizes these three policies allow
SecurityPolicyName = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
_POLICY_NAMES: dict[str, str] = {name.lower().replace("_", ""): name for name in ("None", *POLICIES)}
_POLICY_URI = "http://opcfoundation.org/UA/SecurityPolicy#"


class OpcUaOptions(StreamOptions):
    endpoint: str = Field(description="the server's endpoint URL, e.g. opc.tcp://plc.usine.local:4840/")
    nodes: list[str] = Field(default_factory=list, description=f"variables to subscribe to ({_NODE_ID_HINT})")
    browse: list[str] = Field(
        default_factory=list,
        description="parent nodes (objects, folders): every variable below them is subscribed to",
    )
    sampling_ms: float = Field(500.0, ge=0, le=3_600_000, description="sampling interval asked of the server")
    publishing_ms: float = Field(
        1000.0, gt=0, le=3_600_000, description="publishing interval of the subscription"
    )
    username: str | None = Field(None, description="user name (anonymous session when not set)")
    password: str | None = Field(None, description="password (write ${ENV_VAR})")
    security_policy: SecurityPolicyName = Field(
        "None",
        description="message security: None (neither signed nor encrypted), Basic256Sha256, "
        "Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss (these need certificate and private_key)",
    )
    security_mode: Literal["Sign", "SignAndEncrypt"] | None = Field(
        None, description="with a security_policy: Sign, or SignAndEncrypt (the default)"
    )
    certificate: str | None = Field(
        None, description="the client's application instance certificate: path to its DER or PEM file"
    )
    private_key: str | None = Field(
        None, description="the certificate's private key: path to its PEM or DER file"
    )
    private_key_password: str | None = Field(
        None, description="the password of an encrypted private key (write ${ENV_VAR})"
    )
    server_certificate: str | None = Field(
        None,
        description="the server's certificate (DER or PEM file): only a server presenting it is trusted; "
        "without it, the certificate the server announces is accepted",
    )
    application_uri: str | None = Field(
        None,
        description="the client's application URI: one of the URIs in the certificate (the first one by default)",
    )
    security: Literal["none"] | None = Field(
        None, description="deprecated: write security_policy (only 'none' is accepted here)"
    )
    timeout: float = Field(10.0, gt=0, le=300, description="seconds to wait for each answer of the server")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError("not an opc.tcp:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("write the credentials as the username and password options, not in the URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as err:
            raise ValueError(str(err)) from None
        return v

    @field_validator("nodes", "browse", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("nodes", "browse")
    @classmethod
    def _node_ids(cls, v: list[str]) -> list[str]:
        for text in v:
            _parse_node_id(text)
        return v

    @field_validator("security_policy", mode="before")
    @classmethod
    def _policy_name(cls, v: Any) -> Any:
        if v is None:
            return "None"
        if isinstance(v, str):  # "basic256sha256", "Aes128Sha256RsaOaep", the policy's URI…
            key = v.strip().removeprefix(_POLICY_URI).lower().replace("_", "").replace("-", "")
            return _POLICY_NAMES.get(key, v)
        return v

    @field_validator("security_mode", mode="before")
    @classmethod
    def _mode_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            key = v.strip().lower().replace("_", "").replace("-", "")
            return {"sign": "Sign", "signandencrypt": "SignAndEncrypt"}.get(key, v)
        return v

    @field_validator("security", mode="before")
    @classmethod
    def _old_security(cls, v: Any) -> Any:
        if v is not None and str(v).lower() != "none":
            raise ValueError(
                "replaced by security_policy (Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss) "
                "and security_mode (Sign, SignAndEncrypt)"
            )
        return None if v is None else "none"

    @model_validator(mode="after")
    def _something(self) -> OpcUaOptions:
        if not self.nodes and not self.browse:
            raise ValueError("name the variables to subscribe to: nodes, browse or both")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.security_policy == "None":
            only_secure = ("security_mode", "certificate", "private_key", "private_key_password",
                           "server_certificate", "application_uri")  # fmt: skip
            given = [name for name in only_secure if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{' and '.join(given)}: used only with a security_policy other than None")
        else:
            if self.security is not None:
                raise ValueError(
                    f"security 'none' contradicts security_policy {self.security_policy}: remove it"
                )
            missing = [name for name in ("certificate", "private_key") if not getattr(self, name)]
            if missing:
                raise ValueError(
                    f"security_policy {self.security_policy} needs the client's {' and '.join(missing)} "
                    "(paths to its DER or PEM files)"
                )
        return self

    @property
    def mode(self) -> str:
        """The message security mode: None, Sign or SignAndEncrypt."""
        return "None" if self.security_policy == "None" else (self.security_mode or "SignAndEncrypt")


def _parse_node_id(text: str) -> Any:
    """The asyncua NodeId (or ExpandedNodeId, for nsu=) of a node id string; ValueError otherwise."""
    from asyncua import ua

    try:
        return ua.NodeId.from_string(text.strip())
    except Exception:
        raise ValueError(f"'{text}' is not an OPC UA node id ({_NODE_ID_HINT})") from None


# --- certificates: read and checked when the source is made -------------------------------------


@dataclass(frozen=True)
class _Credentials:
    """The client's certificate and key and the trusted server certificate, as DER bytes."""

    certificate: bytes
    private_key: bytes  # PKCS#8, unencrypted (in memory only)
    application_uri: str
    server_certificate: bytes | None


def thumbprint(der: bytes) -> str:
    """A certificate's SHA-1 thumbprint, as OPC UA tools show it (hex, upper case)."""
    return hashlib.sha1(der).hexdigest().upper()


def _read_file(option: str, text: str, context: Context) -> tuple[Path, bytes]:
    path = Path(text).expanduser()
    resolved = context.check_readable(path, f"opcua source: option '{option}'")
    try:
        with resolved.open("rb") as f:
            data = f.read(CERT_FILE_LIMIT + 1)
    except FileNotFoundError:
        raise BadRequest(f"opcua source: option '{option}': no file {path}") from None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise BadRequest(f"opcua source: option '{option}': cannot read {path}: {reason}") from None
    if len(data) > CERT_FILE_LIMIT:
        raise BadRequest(f"opcua source: option '{option}': {path} is too large for a certificate or key")
    return path, data


def _certificate(option: str, text: str, context: Context) -> Any:
    """The x509.Certificate of a DER or PEM file (the first one of a PEM chain)."""
    from cryptography import x509

    path, data = _read_file(option, text, context)
    try:
        return (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except ValueError:
        raise BadRequest(
            f"opcua source: option '{option}': {path} is not an X.509 certificate (DER or PEM)"
        ) from None


def _load_credentials(options: OpcUaOptions, context: Context) -> _Credentials | None:
    """The certificates and key of a secure session, read and checked once; None without security."""
    if options.security_policy == "None":
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert options.certificate and options.private_key
    policy = options.security_policy
    cert = _certificate("certificate", options.certificate, context)
    where = f"opcua source: option 'certificate': {options.certificate}"
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or not KEY_BITS[0] <= public.key_size <= KEY_BITS[1]:
        size = f"a {public.key_size}-bit RSA key" if isinstance(public, rsa.RSAPublicKey) else "no RSA key"
        raise BadRequest(
            f"{where} has {size}: {policy} needs an RSA key of {KEY_BITS[0]} to {KEY_BITS[1]} bits"
        )
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        raise BadRequest(f"{where} expired on {cert.not_valid_after_utc:%Y-%m-%d}: make a new one")
    if cert.not_valid_before_utc > now:
        raise BadRequest(f"{where} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        uris = []
    if not uris:
        raise BadRequest(
            f"{where} holds no application URI (a URI in its subjectAltName), by which OPC UA names the client"
        )
    uri = options.application_uri or uris[0]
    if uri not in uris:
        raise BadRequest(
            f"opcua source: option 'application_uri': '{uri}' is not in the certificate {options.certificate} "
            f"(it holds {', '.join(uris)})"
        )

    path, data = _read_file("private_key", options.private_key, context)
    password = None if options.private_key_password is None else options.private_key_password.encode()
    where = f"opcua source: option 'private_key': {path}"
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except TypeError:  # encrypted without a password, or a password for a key that is not encrypted
        if password is None:
            raise BadRequest(f"{where} is encrypted: set private_key_password") from None
        raise BadRequest(f"{where} is not encrypted: remove private_key_password") from None
    except ValueError:  # not a key, or a wrong password
        hint = " (or private_key_password is wrong)" if password is not None else ""
        raise BadRequest(f"{where} is not a private key (PEM or DER){hint}") from None
    except Exception as err:  # e.g. an unsupported key type
        raise BadRequest(f"{where} cannot be loaded ({type(err).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key().public_numbers() != public.public_numbers():
        raise BadRequest(f"{where} is not the key of the certificate {options.certificate}")
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    server = None
    if options.server_certificate:
        server = _certificate("server_certificate", options.server_certificate, context).public_bytes(
            serialization.Encoding.DER
        )
    return _Credentials(cert.public_bytes(serialization.Encoding.DER), key_der, uri, server)


def _offer(endpoint: Any) -> str:
    """An endpoint's security, e.g. "Basic256Sha256 SignAndEncrypt" or "None"."""
    policy = str(endpoint.SecurityPolicyUri).rsplit("#", 1)[-1]
    mode = endpoint.SecurityMode.name.rstrip("_")
    return policy if mode == "None" or policy == "None" else f"{policy} {mode}"


def _quiet_asyncua() -> None:
    """asyncua logs warnings for ordinary events (a shortened session timeout, a refused login, a
    reconnect): the source reports problems in its own words, so asyncua speaks only when an
    operator set its logger's level."""
    logger = logging.getLogger("asyncua")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


# --- values -------------------------------------------------------------------------------------


class _Unrepresentable(Exception):
    pass


def _micros(dt: datetime | None) -> int | None:
    if dt is None or dt.year <= 1601:  # 1601-01-01 is OPC UA's "no time"
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _plain(value: Any) -> Any:
    """A notification's value as JSON-able Python: numbers, booleans, text, lists of them."""
    from asyncua import ua

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        micros = _micros(value)
        return (
            None
            if micros is None
            else (_EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")
        )
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, ua.NodeId | ua.QualifiedName):
        return value.to_string()
    if isinstance(value, ua.StatusCode):
        return value.name
    raise _Unrepresentable(type(value).__name__)


def _status(code: Any) -> str:
    """A status code's name; ', Overflow' when the server's queue for the item dropped values."""
    from asyncua.ua import status_codes

    value = 0 if code is None else int(code.value)
    name = status_codes.get_name_and_doc(value & 0xFFFF0000)[0]
    overflow = value & 0x400 and value & 0x80  # InfoType DataValue, Overflow bit
    return f"{name}, Overflow" if overflow else name


def _encode(value: Any, variant: Any) -> tuple[bytes | None, str, str | None]:
    """(spooled payload, type name, error): the value as JSON, or its text form and why it is not stored."""
    vtype = "Null" if variant is None else variant.VariantType.name
    is_array = variant is not None and (variant.is_array or isinstance(value, list))
    type_name = f"{vtype}[]" if is_array else vtype
    if value is None:
        return None, type_name, None
    try:
        if vtype in ("ExtensionObject", "DataValue", "Variant", "DiagnosticInfo"):
            raise _Unrepresentable(type(value).__name__)
        return json.dumps(_plain(value), ensure_ascii=False).encode(), type_name, None
    except (_Unrepresentable, TypeError, ValueError) as err:
        what = f"{vtype} ({err})" if str(err) and str(err) != vtype else vtype
        reason = (
            f"a value of OPC UA type {what} cannot be stored: the opcua source stores numbers, booleans, "
            "text, times and arrays of them"
        )
        return repr(value)[:PAYLOAD_LIMIT].encode(), type_name, reason


def _value_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)  # floats ("21.5", "NaN", "Infinity") and arrays


# --- the source ---------------------------------------------------------------------------------


class _Handler:
    """asyncua's subscription handler: called on the event loop's thread."""

    def __init__(self, source: OpcUaSource) -> None:
        self.source = source

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self.source._on_change(node, val, data)

    def status_change_notification(self, status: Any) -> None:
        log.warning("opcua source %s: subscription status %s", self.source.shown, _status(status.Status))


class OpcUaSource(SpooledSource):
    options: OpcUaOptions

    def __init__(self, options: OpcUaOptions, context: Context) -> None:
        self.options = options
        self.context = context
        parts = urlsplit(options.endpoint)
        self.shown = options.endpoint
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        port = f":{parts.port}" if parts.port else ""
        context.check_egress(f"opc.tcp://{host}{port}{parts.path}")
        self._credentials = _load_credentials(options, context)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self._connected = False
        self._sub: Subscription | None = None
        self._names: dict[Any, tuple[str, str]] = {}  # NodeId → (node id text, browse name)
        self._pending: list[tuple[str, bytes | None, int, str | None, str | None]] = []
        self._flush_scheduled = False
        self._last: dict[str, list[Any]] = {}  # node → [source µs, status, payload digest] last spooled
        self._last_dirty = False
        self._last_saved = 0.0
        self._failure: ManaraError | None = None
        self._unlisted = False  # secure, and the server's endpoints could not be listed
        self._last_path: Path | None = None

    # --- reading: the spool, around the listener ---

    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        path = spool_path(self.context, "opcua")
        self.spool = Spool(path)
        self._last_path = path.with_name("opcua.last.json")
        self._last = self._load_last()
        try:
            with contextlib.closing(cast(Generator[Chunk, None, None], super().read(cursor))) as chunks:
                for chunk in chunks:
                    if self._failure is not None:
                        raise self._failure
                    yield chunk
            if self._failure is not None:
                raise self._failure
        finally:
            self.spool.close()

    def decode(self, rows: pa.Table) -> tuple[pa.RecordBatch | None, pa.Table | None]:
        cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
        rejects: list[tuple[str, str, str | None]] = []
        for seq, key, payload, received, meta_text in zip(
            *(rows.column(n).to_pylist() for n in ("seq", "key", "payload", "received_at", "meta")),
            strict=True,
        ):
            meta = json.loads(meta_text or "{}")
            if meta.get("error"):
                text = payload.decode("utf-8", "replace") if payload is not None else None
                rejects.append(
                    (f"{meta.get('name') or key}: {meta['error']}", f"opcua {key}, spool message {seq}", text)
                )
                continue
            value = json.loads(payload) if payload is not None else None
            number = float(value) if isinstance(value, int | float) else None
            for name, v in (
                ("node", key), ("name", meta.get("name")), ("type", meta.get("type")), ("value", number),
                ("value_text", _value_text(value)), ("status", meta.get("status")),
                ("source_timestamp", meta.get("source_timestamp")),
                ("server_timestamp", meta.get("server_timestamp")), ("received_at", received),
            ):  # fmt: skip
                cols[name].append(v)
        batch = pa.RecordBatch.from_pydict(cols, schema=SCHEMA) if cols["node"] else None
        return batch, rejects_table(rejects) if rejects else None

    # --- listening: an asyncio loop on a thread of its own ---

    def start_listening(self) -> None:
        _quiet_asyncua()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_run_loop, args=(loop,), name="opcua-source", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._call(self._connect(), 4 * self.options.timeout + 5)
        except BaseException:
            self.stop_listening()
            raise

    def stop_listening(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._disconnect(), 2 * self.options.timeout + 5)
        except ManaraError as err:
            log.warning("%s", err.detail)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            self._loop = self._thread = None

    def _call(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BadRequest(f"opcua source: {self.shown}: no answer within {timeout:g} s") from None

    async def _connect(self) -> None:
        from asyncua import Client, ua

        opts = self.options
        client = Client(opts.endpoint, timeout=opts.timeout, auto_reconnect=True, reconnect_max_delay=30.0,
                        reconnect_request_timeout=opts.timeout)  # fmt: skip
        client.session_timeout = 120_000  # ms: the server forgets a session of a process that died
        client.name = client.description = "Manara"
        client.application_uri = CLIENT_URI
        if opts.username is not None:
            client.set_user(opts.username)
            client.set_password(opts.password or "")
        client.connection_lost_callback = self._lost
        self._client = client
        try:
            if self._credentials is not None:
                await self._secure(client, self._credentials)
            await client.connect()
            self._connected = True
            variables = await self._variables(client)
            sub = await client.create_subscription(opts.publishing_ms, _Handler(self))
            self._sub = sub
            # the server keeps twice the samples of one publishing interval per variable (at least
            # 10): a publish that comes late loses nothing
            per_publish = math.ceil(opts.publishing_ms / opts.sampling_ms) if opts.sampling_ms > 0 else 50
            queue = min(1000, max(10, 2 * per_publish))
            handles = await sub.subscribe_data_change(
                [client.get_node(nid) for nid in variables],
                queuesize=queue,
                sampling_interval=ua.Double(opts.sampling_ms),
            )
            for nid, handle in zip(variables, handles, strict=True):
                if isinstance(handle, ua.StatusCode):
                    raise BadRequest(
                        f"opcua source: {self.shown}: cannot subscribe to node '{self._names[nid][0]}': "
                        f"{_status(handle)}"
                    )
        except ManaraError:
            raise
        except Exception as err:
            raise BadRequest(self._why(err)) from None

    async def _secure(self, client: Client, creds: _Credentials) -> None:
        """Sets the client's security: the endpoint offering the policy and mode is looked up (over a
        None channel, as OPC UA discovery does) to say plainly when the server does not offer them or
        presents a certificate other than server_certificate; the secure channel itself is then
        opened with the trusted certificate, so a server without its private key cannot answer."""
        from asyncua import ua
        from asyncua.crypto import security_policies, uacrypto

        opts = self.options
        where = f"opcua source: {self.shown}"
        policy = getattr(security_policies, POLICIES[opts.security_policy])
        mode = getattr(ua.MessageSecurityMode, opts.mode)
        client.application_uri = creds.application_uri
        pinned, presented = creds.server_certificate, None
        try:
            endpoints = await client.connect_and_get_server_endpoints()
        except (OSError, TimeoutError):
            raise
        except Exception as err:
            if pinned is None:
                raise BadRequest(
                    f"{where}: cannot list the server's endpoints ({self._why(err).removeprefix(where + ': ')}): "
                    "set server_certificate to connect without them"
                ) from None
            endpoints = None  # the pinned certificate is enough to open the secure channel
            self._unlisted = True
        if endpoints is not None:
            found = [ep for ep in endpoints if ep.SecurityPolicyUri == policy.URI and ep.SecurityMode == mode]
            if not found:
                offered = sorted({_offer(ep) for ep in endpoints})
                raise BadRequest(
                    f"{where}: the server does not offer security_policy {opts.security_policy} with "
                    f"security_mode {opts.mode} (it offers: {', '.join(offered) or 'nothing'})"
                )
            if found[0].ServerCertificate:
                presented = uacrypto.der_from_x509(uacrypto.x509_from_der(found[0].ServerCertificate))
            if pinned is not None and presented != pinned:
                got = f"certificate {thumbprint(presented)}" if presented else "no certificate"
                raise BadRequest(
                    f"{where}: the server presents {got} (SHA-1), not server_certificate {thumbprint(pinned)}: "
                    "connection refused (if the server's certificate was renewed, check the new one with its "
                    "administrator and set it as server_certificate)"
                )
        peer = pinned or presented
        if not peer:
            raise BadRequest(f"{where}: the server's endpoint has no certificate: set server_certificate")
        if pinned is None:
            log.warning(
                "opcua source %s: the server's certificate (SHA-1 %s) is accepted without check: "
                "set server_certificate to trust only it",
                self.shown,
                thumbprint(peer),
            )
        await client.set_security(
            policy,
            certificate=uacrypto.CertProperties(creds.certificate, "der"),
            private_key=uacrypto.CertProperties(creds.private_key, "der"),
            server_certificate=uacrypto.CertProperties(peer, "der"),
            mode=mode,
        )

    def _why(self, err: BaseException) -> str:
        """One readable line for a connection or service error."""
        from asyncua import ua

        where = f"opcua source: {self.shown}"
        # endpoints not listed, server_certificate trusted as given: a server without its key cannot answer
        unchecked = " (or the server does not hold the key of server_certificate)" if self._unlisted else ""
        if isinstance(err, ConnectionRefusedError):
            return f"{where}: connection refused (is the OPC UA server running, on this port?)"
        if isinstance(err, TimeoutError | asyncio.TimeoutError):
            return f"{where}: no answer within {self.options.timeout:g} s{unchecked}"
        if isinstance(err, OSError):
            reason = err.strerror or str(err) or type(err).__name__
            return f"{where}: cannot connect: {reason}"
        if isinstance(err, ua.UaStatusCodeError):
            name = _status(ua.StatusCode(err.code))
            if name in ("BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected"):
                how = "the username and password" if self.options.username else "anonymous login"
                return f"{where}: the server refused the session ({name}): check {how}"
            if name.startswith("BadCertificate") or name in (
                "BadSecurityChecksFailed",
                "BadNoValidCertificates",
            ):
                if self.options.security_policy == "None":
                    return f"{where}: the server refused the session ({name}): set a security_policy and certificate"
                return (
                    f"{where}: the server refused the client certificate ({name}): the server must trust it "
                    "(on most servers, move it from the rejected to the trusted certificates), and it must be "
                    f"valid and hold the application URI{unchecked}"
                )
            if name in ("BadSecurityPolicyRejected", "BadSecurityModeRejected"):
                return (
                    f"{where}: the server refused security_policy {self.options.security_policy} with "
                    f"security_mode {self.options.mode} ({name})"
                )
            return f"{where}: {name}: {str(err).split('(')[0].strip()}"
        if isinstance(err, ua.UaError) and "certificate mismatch" in str(err).lower():
            return f"{where}: the server presents a certificate other than server_certificate: connection refused"
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        return f"{where}: {type(err).__name__}" + (f": {lines[0]}" if lines else "")

    async def _node_id(self, client: Client, text: str) -> Any:
        """The NodeId of an option's node id, its nsu= namespace URI turned into the server's index."""
        from asyncua import ua

        nid = _parse_node_id(text)
        uri = getattr(nid, "NamespaceUri", None)
        if uri:
            try:
                index = await client.get_namespace_index(uri)
            except ValueError:
                raise BadRequest(
                    f"opcua source: {self.shown}: no namespace '{uri}' on the server (node '{text}')"
                ) from None
            return ua.NodeId(nid.Identifier, cast(Any, index), nid.NodeIdType)
        return ua.NodeId(nid.Identifier, nid.NamespaceIndex, nid.NodeIdType)

    async def _variables(self, client: Client) -> list[Any]:
        """The NodeIds to subscribe to: the listed ones and the variables below the browse parents,
        checked to exist and to be variables; their browse names are kept for the rows."""
        from asyncua import ua

        opts = self.options
        wanted = [(text, await self._node_id(client, text)) for text in [*opts.nodes, *opts.browse]]
        params = ua.ReadParameters()
        for _, nid in wanted:
            for attr in (ua.AttributeIds.NodeClass, ua.AttributeIds.BrowseName):
                params.NodesToRead.append(ua.ReadValueId(NodeId=nid, AttributeId=attr))
        results = await client.uaclient.read(params)
        found: list[Any] = []
        for i, (text, nid) in enumerate(wanted):
            cls_dv, name_dv = results[2 * i], results[2 * i + 1]
            if cls_dv.StatusCode is not None and not cls_dv.StatusCode.is_good():
                name = _status(cls_dv.StatusCode)
                why = "does not exist" if name == "BadNodeIdUnknown" else f"cannot be read ({name})"
                raise BadRequest(f"opcua source: {self.shown}: node '{text}' {why}")
            node_class = ua.NodeClass(cast(Any, cls_dv.Value).Value)
            browse_name = cast(Any, name_dv.Value).Value.Name
            if i < len(opts.nodes):
                if node_class != ua.NodeClass.Variable:
                    raise BadRequest(
                        f"opcua source: {self.shown}: node '{text}' is an {node_class.name}, not a variable "
                        "(list it under browse to subscribe to the variables below it)"
                    )
                self._add(found, nid, browse_name)
            else:
                before = len(found)
                await self._browse(client, nid, found)
                if len(found) == before:
                    raise BadRequest(f"opcua source: {self.shown}: no variables below node '{text}' (browse)")
        return found

    async def _browse(self, client: Client, parent: Any, found: list[Any]) -> None:
        from asyncua import ua

        level, seen = [parent], {parent}
        for _ in range(BROWSE_DEPTH):
            below = []
            for nid in level:
                refs = await client.get_node(nid).get_children_descriptions(
                    nodeclassmask=cast(ua.NodeClass, ua.NodeClass.Object | ua.NodeClass.Variable)
                )
                for ref in refs:
                    child = ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType)
                    if child in seen:
                        continue
                    seen.add(child)
                    if ref.NodeClass == ua.NodeClass.Variable:
                        self._add(found, child, ref.BrowseName.Name)
                    else:
                        below.append(child)
            if not below:
                return
            level = below

    def _add(self, found: list[Any], nid: Any, name: str) -> None:
        if nid in self._names:
            return
        if len(found) >= MAX_NODES:
            raise BadRequest(
                f"opcua source: {self.shown}: more than {MAX_NODES:,} variables to subscribe to "
                "(name fewer nodes, or browse a lower parent)"
            )
        self._names[nid] = (nid.to_string(), name)
        found.append(nid)

    async def _lost(self, err: Exception) -> None:
        log.warning("opcua source %s: connection lost (%s), reconnecting", self.shown, type(err).__name__)

    async def _disconnect(self) -> None:
        if self._sub is not None:
            await asyncio.sleep(0)  # the notifications already received reach the handler first
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sub.delete(), self.options.timeout)
            self._sub = None
        for _ in range(2):
            await asyncio.sleep(0)
        self._flush()
        self._save_last()
        if self._client is not None and self._connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.disconnect(), self.options.timeout)
        self._client, self._connected = None, False

    # --- notifications → the spool (on the loop's thread) ---

    def _on_change(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        try:
            dv = data.monitored_item.Value
            key, name = self._names.get(node.nodeid) or (node.nodeid.to_string(), "")
            payload, type_name, error = _encode(val, dv.Value)
            status = _status(dv.StatusCode)
            source_ts = _micros(dv.SourceTimestamp)
            signature = [source_ts, status, hashlib.sha1(payload or b"").hexdigest()]
            if self._last.get(key) == signature:
                return  # the same sample again (a new subscription's first notification)
            self._last[key] = signature
            self._last_dirty = True
            meta = {"name": name, "type": type_name, "status": status, "source_timestamp": source_ts,
                    "server_timestamp": _micros(dv.ServerTimestamp)}  # fmt: skip
            if error:
                meta["error"] = error
            received = time.time_ns() // 1000
            self._pending.append((key, payload, received, json.dumps(meta, ensure_ascii=False), None))
            if not self._flush_scheduled and self._loop is not None:
                self._flush_scheduled = True
                # after the other notifications of this publish response: one spool write for all
                self._loop.call_soon(self._flush)
        except Exception as err:  # never lose a notification silently
            self._failure = BadRequest(
                f"opcua source: {self.shown}: cannot record a value: {type(err).__name__}: {err}"
            )

    def _flush(self) -> None:
        self._flush_scheduled = False
        rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            self.spool.append(rows, acked=True)
        except Exception as err:
            self._failure = BadRequest(f"opcua source: cannot write the spool {self.spool.path}: {err}")
            return
        if time.monotonic() - self._last_saved >= LAST_SAVE_S:
            self._save_last()

    def _load_last(self) -> dict[str, list[Any]]:
        assert self._last_path is not None
        try:
            data = json.loads(self._last_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_last(self) -> None:
        if not self._last_dirty or self._last_path is None:
            return
        tmp = self._last_path.with_name(f".{self._last_path.name}.tmp")
        try:
            tmp.write_text(json.dumps(self._last), encoding="utf-8")
            os.replace(tmp, self._last_path)
        except OSError as err:
            log.warning("opcua source: cannot save %s: %s", self._last_path, err)
            return
        self._last_dirty, self._last_saved = False, time.monotonic()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)  # asyncua's watchdogs, if a disconnect did not end them
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    finally:
        loop.close()


CONNECTOR = Connector(
    name="opcua",
    kind="source",
    summary="value changes of OPC UA variables (an industrial controller), by subscription, spooled on disk",
    options=OpcUaOptions,
    factory=OpcUaSource,
)
