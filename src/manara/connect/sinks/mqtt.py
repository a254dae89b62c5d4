"""MQTT sink: each committed group published to a broker, at least once (QoS 1, every PUBACK awaited).

`format: row` (the default) publishes one JSON object per row; the topic may name columns, filled
from each row: `plant/{site}/alarms`. A value that holds `/`, `+` or `#` has them replaced by `_` so
that it stays one topic level and never a wildcard. `format: group` publishes a group in parts of
`batch_rows` rows as `{"pipeline", "seq", "part", "parts", "rows": [...]}` on a fixed topic.

A group counts as delivered when the broker has acknowledged every message of it (QoS 1) or, at
QoS 0, when every message is written to the socket. Otherwise the sink stops with the reason and the
group is published again from the lake at the next run: consumers may see a message twice. With
MQTT 5 each message carries the user property `manara-key` = `<tenant>/<pipeline>:<seq>:<n>`, the
same for a repeated message, so a consumer can drop repeats.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from typing import Any, Literal

import paho.mqtt.client as mqtt
import pyarrow as pa
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, field_validator

from manara.connect.delivery import json_parts, json_rows, sink_key
from manara.connect.protocol import Connector, Context, Options, Sink, SinkError
from manara.connect.sources.mqtt import Broker
from manara.errors import BadRequest

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_NOT_A_LEVEL = str.maketrans({"/": "_", "+": "_", "#": "_"})


class MqttSinkOptions(Options):
    url: str = Field(description="broker: mqtt://host:1883 or mqtts://host:8883")
    topic: str = Field(description="topic to publish to; {column} is filled from each row (format row)")
    format: Literal["row", "group"] = Field("row", description="row: a message per row; group: per part")
    batch_rows: int = Field(1000, ge=1, le=100_000, description="format group: most rows in one message")
    qos: Literal[0, 1] = Field(1, description="1: each message acknowledged by the broker")
    retain: bool = Field(False, description="the broker keeps the last message of each topic")
    client_id: str | None = Field(None, description="default: manara-sink-<tenant>-<pipeline>")
    username: str | None = None
    password: str | None = None
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    ca_file: str | None = Field(None, description="mqtts: the CA certificate that signed the broker's")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="longest wait for a group's acknowledgements")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or "+" in v or "#" in v or "\0" in v:
            raise ValueError(f"'{v}' is not a topic to publish to (no wildcards + or #)")
        return v


class MqttSink(Sink):
    def __init__(self, options: MqttSinkOptions, context: Context) -> None:
        self.options, self.context = options, context
        self.broker = Broker.parse(options.url, options.username, options.password, context, "mqtt sink")
        self.fields = _PLACEHOLDER.findall(options.topic)
        if self.fields and options.format == "group":
            raise BadRequest("mqtt sink: a topic with {column} placeholders needs format row")
        self.client_id = options.client_id or f"manara-sink-{(context.pipeline or 'sink').replace('/', '-')}"
        self._client: mqtt.Client | None = None

    def _connect(self) -> mqtt.Client:
        if self._client is not None and self._client.is_connected():
            return self._client
        self.close()
        v5 = self.options.protocol == "5"
        b = self.broker
        client = b.client(
            self.client_id, v5=v5, persistent=False, ca_file=self.options.ca_file, inflight=1000
        )
        answered = threading.Event()
        outcome: dict[str, Any] = {}

        def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            outcome["reason"] = reason
            answered.set()

        client.on_connect = on_connect
        try:
            client.connect(b.host, b.port, keepalive=30)
        except (OSError, ssl.SSLError) as e:
            raise SinkError(f"mqtt sink: cannot reach the broker at {b.host}:{b.port} ({e})") from None
        client.loop_start()
        answered.wait(min(self.options.timeout_s, 10.0))
        reason = outcome.get("reason")
        if reason is None or reason.is_failure:
            client.loop_stop()
            client.disconnect()
            why = f"the broker refused the connection: {reason}" if reason else "no answer from the broker"
            raise SinkError(f"mqtt sink: {why} at {b.host}:{b.port}")
        self._client = client
        return client

    def _messages(self, rows: pa.Table, seq: int) -> list[tuple[str, str]]:
        opts = self.options
        if opts.format == "group":
            return [(opts.topic, doc) for doc in json_parts(rows, self.context, seq, opts.batch_rows)]
        texts = json_rows(rows)
        if not self.fields:
            return [(opts.topic, t) for t in texts]
        missing = [f for f in self.fields if f not in rows.column_names]
        if missing:
            raise SinkError(
                f"mqtt sink: topic '{opts.topic}' names column(s) not in the rows: {', '.join(missing)}"
            )
        values = {f: rows.column(f).to_pylist() for f in set(self.fields)}
        topics = [
            _PLACEHOLDER.sub(lambda m, i=i: _level(values[m.group(1)][i]), opts.topic)  # type: ignore[misc]
            for i in range(rows.num_rows)
        ]
        return list(zip(topics, texts, strict=True))

    def deliver(self, rows: pa.Table, seq: int) -> None:
        messages = self._messages(rows, seq)
        client = self._connect()
        v5 = self.options.protocol == "5"
        key = sink_key(self.context, seq)
        infos = []
        for n, (topic, payload) in enumerate(messages, start=1):
            props = None
            if v5:
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.UserProperty = [("manara-key", f"{key}:{n}")]
                props.ContentType = "application/json"
            info = client.publish(
                topic, payload, qos=self.options.qos, retain=self.options.retain, properties=props
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise SinkError(f"mqtt sink: publishing to '{topic}' failed: {mqtt.error_string(info.rc)}")
            infos.append(info)
        deadline = time.monotonic() + self.options.timeout_s
        for info in infos:
            left = deadline - time.monotonic()
            try:
                info.wait_for_publish(max(left, 0.001))
            except (RuntimeError, ValueError) as err:
                raise SinkError(f"mqtt sink: group {seq} not delivered: {err}") from None
            if not info.is_published():
                self.close()
                raise SinkError(
                    f"mqtt sink: the broker at {self.broker.host}:{self.broker.port} did not acknowledge "
                    f"group {seq} within {self.options.timeout_s:.0f} s"
                )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


def _level(value: Any) -> str:
    return "_" if value is None else str(value).translate(_NOT_A_LEVEL) or "_"


CONNECTOR = Connector(
    name="mqtt",
    kind="sink",
    summary="publish each committed group to an MQTT broker: a JSON message per row or per part, QoS 1",
    options=MqttSinkOptions,
    factory=MqttSink,
)
