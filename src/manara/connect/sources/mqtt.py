"""MQTT source: topics (with + and # wildcards) of a broker, QoS 1, persistent session, spooled on disk.

Delivery, end to end:
- **While Manara is down** the broker keeps the pipeline's messages: the source connects with a fixed
  client id and a persistent session (MQTT 5 `clean_start=0` with a session expiry, or 3.1.1
  `clean_session=0`), and `pipeline apply` already opens that session, so messages published from
  then on are kept even before the first run.
- **While a run listens** each QoS 1 message is written to the pipeline's spool and fsynced *before*
  its PUBACK is sent (`manual_ack`): an acknowledged message is on disk. The run loads the spool into
  the lake exactly once (`manara.connect.stream`).
- **After a crash** between the fsync and the PUBACK, the broker sends the message again with its
  original packet id and the DUP flag (MQTT 3.1.1 §4.4, 5.0 §4.4). The source recognises it among
  the spooled messages still marked unacknowledged (packet id, topic, payload digest), drops it and
  acknowledges it. So a message is loaded once, not at least once.
- QoS 2 is not offered: a client that is not persistent itself (paho keeps QoS 2 state in memory) can
  lose a message between PUBREC and PUBREL; QoS 1 with the spool is the stronger choice here.

Rows: `topic`, `received_at` (UTC) and, with `payload: json` (the default), one column per field of
the JSON object (read in one vectorised pass; JSON numbers as doubles unless `numbers: infer`, so a
sensor sending 21 then 21.5 does not pause its pipeline; `types` fixes fields' types). With `payload:
text` or `binary` the message is one `payload` column. A payload that is not a JSON object goes to the
quarantine with the parser's reason and its raw bytes.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import pyarrow as pa
import pyarrow.compute as pc
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import Field, field_validator

from manara.connect.protocol import Connector, Context, rejects_table
from manara.connect.stream import (
    Spool,
    SpooledSource,
    StreamOptions,
    arrow_type,
    json_objects,
    raw_text,
    spool_path,
)  # fmt: skip
from manara.errors import BadRequest

CONNECT_TIMEOUT_S = 10.0
RESERVED = ("topic", "received_at")


class MqttOptions(StreamOptions):
    url: str = Field(description="broker: mqtt://host:1883 or mqtts://host:8883")
    topics: list[str] = Field(min_length=1, description="topic filters, with + and # wildcards")
    qos: Literal[0, 1] = Field(1, description="1: every message kept until it is on disk; 0: at most once")
    client_id: str | None = Field(None, description="default: manara-<tenant>-<pipeline> (names the session)")
    username: str | None = None
    password: str | None = None
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=60, description="MQTT 5: how long the broker keeps messages while Manara is away"
    )
    payload: Literal["json", "text", "binary"] = Field("json", description="how a message's payload is read")
    numbers: Literal["double", "infer"] = Field("double", description="JSON numbers as doubles, or as read")
    types: dict[str, str] = Field(default_factory=dict, description="fixed field types, e.g. {count: long}")
    ca_file: str | None = Field(None, description="mqtts: the CA certificate that signed the broker's")
    flush_ms: int = Field(20, ge=1, le=5000, description="longest a received message waits for its fsync")

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        for t in v:
            parts = t.split("/")
            if (
                not t
                or "#" in t[:-1]
                or any(("+" in p and p != "+") or ("#" in p and p != "#") for p in parts)
            ):
                raise ValueError(
                    f"'{t}' is not an MQTT topic filter (+ and # stand for whole levels; # only last)"
                )
        return v


@dataclass(frozen=True)
class Broker:
    """Where an MQTT client connects: parsed from an mqtt:// or mqtts:// URL, egress-checked."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(
        cls, url: str, username: str | None, password: str | None, context: Context, who: str
    ) -> Broker:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise BadRequest(f"{who}: '{url}' is not an mqtt:// or mqtts:// broker URL")
        tls = parts.scheme == "mqtts"
        port = parts.port or (8883 if tls else 1883)
        context.check_egress(f"{parts.scheme}://{parts.hostname}:{port}")
        return cls(
            parts.hostname, port, tls,
            username or (unquote(parts.username) if parts.username else None),
            password or (unquote(parts.password) if parts.password else None),
        )  # fmt: skip

    def client(
        self, client_id: str, *, v5: bool, persistent: bool, ca_file: str | None, inflight: int, **kw: Any
    ) -> mqtt.Client:
        """A paho client for this broker: protocol, credentials, TLS and in-flight window set."""
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else not persistent, **kw,
        )  # fmt: skip
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(inflight)
        client.max_queued_messages_set(0)
        return client


class MqttSource(SpooledSource):
    options: MqttOptions

    def __init__(self, options: MqttOptions, context: Context) -> None:
        self.options, self.context = options, context
        broker = Broker.parse(options.url, options.username, options.password, context, "mqtt source")
        self.broker = broker
        self.host, self.port, self.tls = broker.host, broker.port, broker.tls
        self.username, self.password = broker.username, broker.password
        self.types = {k: arrow_type(v) for k, v in options.types.items()}
        # one session per pipeline of this installation: the tenant, the name, and the workspace's folder
        where = hashlib.blake2b(str(context.state_dir).encode(), digest_size=4).hexdigest()
        self.client_id = (
            options.client_id or f"manara-{(context.pipeline or 'source').replace('/', '-')}-{where}"
        )
        self.spool = Spool(spool_path(context, "mqtt"))
        self._client: mqtt.Client | None = None
        self._pending: list[tuple[str, bytes, int, str | None, str | None, int]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._flusher: threading.Thread | None = None
        self._dups: set[str] = set()
        self._error: str | None = None

    # --- connection ------------------------------------------------------------------------------

    def _connect(self, listen: bool = False) -> mqtt.Client:
        v5 = self.options.protocol == "5"
        client = self.broker.client(
            self.client_id,
            v5=v5,
            persistent=True,
            ca_file=self.options.ca_file,
            inflight=65535,
            manual_ack=True,
        )
        connected = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            outcome["reason"] = reason
            if not reason.is_failure:
                opts = [(t, SubscribeOptions(qos=self.options.qos)) if v5 else (t, self.options.qos)
                        for t in self.options.topics]  # fmt: skip
                c.subscribe(opts)  # type: ignore[arg-type]
            connected.set()

        def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
            bad = [f"{t}: {r}" for t, r in zip(self.options.topics, reasons, strict=False) if r.is_failure]
            outcome["subscribed"] = bad
            connected.set()

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        if listen:  # before connecting: the session's kept messages come right after CONNACK
            client.on_message = self._on_message
            self._client = client
        props = None
        if v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.options.session_expiry_s
            props.ReceiveMaximum = 65535
        try:
            client.connect(self.host, self.port, keepalive=30, clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                           properties=props)  # fmt: skip
        except (OSError, ssl.SSLError) as e:
            self._client = None
            raise BadRequest(
                f"mqtt source: cannot reach the broker at {self.host}:{self.port} ({e})"
            ) from None
        client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while "subscribed" not in outcome and time.monotonic() < deadline:
            connected.wait(0.1)
            connected.clear()
            reason = outcome.get("reason")
            if reason is not None and reason.is_failure:
                break
        reason = outcome.get("reason")
        problem = None
        if reason is None:
            problem = f"no answer from the broker at {self.host}:{self.port} within {CONNECT_TIMEOUT_S:.0f} s"
        elif reason.is_failure:
            problem = f"the broker refused the connection: {reason}"
        elif "subscribed" not in outcome:
            problem = "the broker did not confirm the subscription"
        elif outcome["subscribed"]:
            problem = "the broker refused topic filters: " + "; ".join(outcome["subscribed"])
        if problem:
            self._client = None
            client.loop_stop()
            client.disconnect()
            raise BadRequest(f"mqtt source: {problem}")
        return client

    def prepare(self) -> None:
        """Open the persistent session and its subscriptions: the broker keeps messages from now on."""
        client = self._connect()
        client.disconnect()
        client.loop_stop()

    # --- listening -------------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        ident = None
        if msg.qos >= 1:
            ident = f"{msg.mid}|{msg.topic}|{hashlib.blake2b(payload, digest_size=12).hexdigest()}"
            if msg.dup and ident in self._dups:  # spooled before a crash, its PUBACK was lost
                self._dups.discard(ident)
                client.ack(msg.mid, msg.qos)
                self.spool.mark_acked(idents=[ident])
                return
        with self._cond:
            self._pending.append(
                (msg.topic, payload, time.time_ns() // 1000, None, ident, msg.mid if msg.qos else -1)
            )
            if len(self._pending) == 1:
                self._cond.notify()

    def _flush_loop(self) -> None:
        wait = self.options.flush_ms / 1000
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
            time.sleep(wait)  # let a burst gather: one fsync for many messages
            with self._cond:
                batch, self._pending = self._pending, []
            try:
                self._store(batch)
            except Exception as e:  # a full disk: stop acknowledging, so the broker keeps the messages
                self._error = f"mqtt source: cannot write the spool ({e})"
                return

    def _store(self, batch: list[tuple[str, bytes, int, str | None, str | None, int]]) -> None:
        client = None if self._stopping else self._client
        last = self.spool.append([m[:5] for m in batch], acked=False)
        if client is None:  # disconnected: the broker sends them again (DUP), recognised then
            return
        for m in batch:  # on disk: now the broker may forget them
            if m[5] >= 0:
                client.ack(m[5], 1)
        self.spool.mark_acked(upto=last)

    def start_listening(self) -> None:
        self._dups = self.spool.unacked()
        self._stopping, self._error = False, None
        self._flusher = threading.Thread(target=self._flush_loop, name="mqtt-spool", daemon=True)
        self._flusher.start()
        self._connect(listen=True)

    def stop_listening(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()  # what was not acknowledged stays with the broker
            client.loop_stop()
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._flusher is not None:
            self._flusher.join()
        if self._error:
            raise BadRequest(self._error)

    # --- decoding --------------------------------------------------------------------------------

    def decode(self, rows: pa.Table) -> tuple[pa.RecordBatch | None, pa.Table | None]:
        topic = rows.column("key")
        received = pc.cast(rows.column("received_at"), pa.timestamp("us", tz="UTC"))
        if self.options.payload != "json":
            payload = rows.column("payload")
            if self.options.payload == "text":
                try:
                    payload = payload.cast(pa.string())
                except pa.ArrowInvalid:  # some are not UTF-8: find them (rare path)
                    return self._text_fallback(rows, topic, received)
            table = pa.table({"topic": topic, "received_at": received, "payload": payload})
            return table.combine_chunks().to_batches()[0], None
        positions = [
            f"{t} (spool {s})" for t, s in zip(topic.to_pylist(), rows.column("seq").to_pylist(), strict=True)
        ]
        parsed, kept, rejects = json_objects(rows.column("payload").combine_chunks(), positions, types=self.types,
                                             numbers=self.options.numbers)  # fmt: skip
        cols: dict[str, pa.Array | pa.ChunkedArray] = {}
        for name in RESERVED:
            cols[f"mqtt_{name}" if name in parsed.column_names else name] = (
                topic if name == "topic" else received
            ).take(kept)
        for name in parsed.column_names:
            cols[name] = parsed.column(name)
        table = pa.table(cols)
        if not table.num_rows:
            return None, rejects
        return table.combine_chunks().to_batches()[0], rejects

    def _text_fallback(
        self, rows: pa.Table, topic: pa.ChunkedArray, received: pa.ChunkedArray
    ) -> tuple[pa.RecordBatch | None, pa.Table | None]:
        good, texts, bad = [], [], []
        for i, (t, s, p) in enumerate(zip(topic.to_pylist(), rows.column("seq").to_pylist(),
                                          rows.column("payload").to_pylist(), strict=True)):  # fmt: skip
            try:
                texts.append(p.decode("utf-8") if p is not None else None)
                good.append(i)
            except UnicodeDecodeError as e:
                bad.append((f"payload is not UTF-8 text ({e.reason} at byte {e.start})", f"{t} (spool {s})",
                            raw_text(p)))  # fmt: skip
        idx = pa.array(good, pa.int64())
        table = pa.table(
            {
                "topic": topic.take(idx),
                "received_at": received.take(idx),
                "payload": pa.array(texts, pa.string()),
            }
        )
        batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        return batch, rejects_table(bad) if bad else None


CONNECTOR = Connector(
    name="mqtt",
    kind="source",
    summary="MQTT topics (wildcards), JSON payloads, QoS 1, persistent session, on-disk spool",
    options=MqttOptions,
    factory=MqttSource,
)
