"""Webhook sink: each committed group POSTed as JSON, signed with HMAC-SHA256, retried with backoff.

A group is sent in parts of at most `batch_rows` rows:

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <tenant>/<pipeline>:<seq>:<part>
    X-Manara-Timestamp: <unix seconds>
    X-Manara-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"pipeline": "<tenant>/<pipeline>", "seq": 12, "part": 1, "parts": 3, "rows": [{...}, ...]}

The signature is the one Manara's event subscriptions use (`manara.connect.bus.sign`), so one
receiver checks both. A 2xx answer delivers a part; 408, 429 and 5xx answers and network errors are
retried with exponential backoff (a `Retry-After` header is respected, within `max_wait_s`); any
other 4xx is final (the receiver refuses the data: retrying would not change it). Delivery is
at-least-once: after a crash a part may come again, with the same idempotency key.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx
import pyarrow as pa
from pydantic import Field, SecretStr

from manara.connect.bus import sign
from manara.connect.delivery import json_parts, sink_key
from manara.connect.protocol import Connector, Context, Options, Sink, SinkError
from manara.errors import BadRequest
from manara.govern.egress import redact

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class WebhookOptions(Options):
    url: str = Field(description="the receiver: https://… (its host must be in egress_allow)")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for X-Manara-Signature (use ${ENV})")
    batch_rows: int = Field(1000, ge=1, le=100_000, description="most rows in one POST")
    timeout_s: float = Field(10.0, gt=0, le=300, description="per request")
    retries: int = Field(5, ge=0, le=20, description="retries of a part before the sink stops")
    backoff_s: float = Field(1.0, ge=0, le=60, description="first wait between retries, doubled each time")
    max_wait_s: float = Field(60.0, ge=0, le=3600, description="longest wait between two tries")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers, e.g. Authorization")


class WebhookSink(Sink):
    def __init__(self, options: WebhookOptions, context: Context) -> None:
        if not options.url.startswith(("http://", "https://")):
            raise BadRequest(f"webhook sink: '{redact(options.url)}' is not an http(s) URL")
        context.check_egress(options.url)
        self.options, self.context = options, context
        self.shown = redact(options.url)
        self.client = httpx.Client(timeout=options.timeout_s, follow_redirects=False, trust_env=False)

    def deliver(self, rows: pa.Table, seq: int) -> None:
        for part, body in enumerate(json_parts(rows, self.context, seq, self.options.batch_rows), start=1):
            self._post(body.encode("utf-8"), f"{sink_key(self.context, seq)}:{part}")

    def _post(self, body: bytes, key: str) -> None:
        opts = self.options
        wait = opts.backoff_s
        for attempt in range(opts.retries + 1):
            timestamp = str(int(time.time()))
            headers = {**opts.headers, "Content-Type": "application/json", "Idempotency-Key": key,
                       "X-Manara-Timestamp": timestamp}  # fmt: skip
            if opts.secret is not None:
                headers["X-Manara-Signature"] = sign(opts.secret.get_secret_value(), timestamp, body)
            retry_after: float | None = None
            try:
                response = self.client.post(opts.url, content=body, headers=headers)
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                if 200 <= response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code} {response.text[:200]!r}"
                if response.status_code not in RETRYABLE:
                    raise SinkError(f"{self.shown} refused part {key}: {problem}")
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt == opts.retries:
                tries = f"{attempt + 1} attempt" + ("s" if attempt else "")
                raise SinkError(f"{self.shown} failed {key} after {tries}: {problem}")
            pause = min(retry_after if retry_after is not None else wait, opts.max_wait_s)
            if self.context.stop is not None:
                if self.context.stop.wait(pause):
                    raise SinkError(f"{self.shown}: stopped while retrying {key} ({problem})")
            else:
                time.sleep(pause)
            wait *= 2

    def close(self) -> None:
        self.client.close()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


CONNECTOR = Connector(
    name="webhook",
    kind="sink",
    summary="POST each committed group as JSON, HMAC-SHA256 signed, retried with backoff",
    options=WebhookOptions,
    factory=WebhookSink,
)
