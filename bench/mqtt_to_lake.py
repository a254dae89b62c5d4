"""Benchmark: MQTT → lake, sustained messages/s and end-to-end latency, against a bare subscriber.

In the same run, alternating, `--repeat` times, one publisher (a process of its own) sends `--messages` QoS 1 JSON messages
(`{"id", "sent_ns", "line", "value"}`, ~80 bytes) as fast as paho-mqtt can, to a topic of its own:

- **bare subscriber**: a paho-mqtt client (QoS 1, automatic acknowledgements) that only counts
  messages. Its rate, first to last message, is what the broker and the client library give.
- **Manara**: a real pipeline (`apply_pipeline` + `run_pipeline`, source `mqtt`, QoS 1, persistent
  session, spool with fsync before PUBACK, `commit_seconds` = `--commit-seconds`) into a fresh
  workspace. Rate: messages loaded ÷ (the last one's arrival in the spool − the first one's sending),
  the same span as the bare subscriber's; every message counted was committed to the lake.
  End-to-end latency of a message: the time of the Iceberg commit that made it visible (snapshot
  timestamp) − the time it was sent; p50 / p99 over all messages (messages arrive in order, so the
  snapshot that first counts `n` rows holds message `n`).

    .venv/bin/python bench/mqtt_to_lake.py [--messages 100000] [--repeat 3] [--url mqtt://127.0.0.1:18830] [--json]

Without `--url` a Mosquitto is started with scripts/services.sh. Figures are medians over repeats;
the ratio is Manara's messages/s ÷ the bare subscriber's, per repeat, then the median.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_csv import _loadavg, _peak_rss_mb, _reset_peak_rss, machine_info  # noqa: E402

from manara.config import Settings  # noqa: E402
from manara.connect.pipelines import apply_pipeline, parse_spec, run_pipeline  # noqa: E402
from manara.workspace import init_workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def client(url: str, name: str) -> mqtt.Client:
    parts = urlsplit(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    c.max_inflight_messages_set(1000)
    c.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    return c


def publish(url: str, topic: str, n: int) -> float:
    """Send n messages as fast as the client allows; returns the send time of the first (seconds)."""
    pub = client(url, "bench-pub")
    pub.loop_start()
    first = time.time()
    info = None
    for i in range(n):
        body = json.dumps({"id": i, "sent_ns": time.time_ns(), "line": f"L{i % 4}", "value": i * 0.5})
        info = pub.publish(topic, body, qos=1)
        if i % 2000 == 1999:
            info.wait_for_publish(30)  # keep the client's own queue bounded
    if info is not None:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()
    return first


def _publish_child(url: str, topic: str, n: int, out: Any) -> None:
    out.put(publish(url, topic, n))


def publish_elsewhere(url: str, topic: str, n: int) -> float:
    """`publish` in a process of its own: the publisher never competes with the subscriber for the GIL."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_publish_child, args=(url, topic, n, out))
    proc.start()
    first = float(out.get(timeout=600))
    proc.join(60)
    return first


def bare(url: str, n: int) -> dict[str, float]:
    topic = f"bench/{uuid.uuid4().hex[:8]}/m"
    got: list[float] = []
    done = threading.Event()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append(time.time())
        if len(got) == n:
            done.set()

    sub = client(url, "bench-bare")
    sub.on_message = on_message
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    time.sleep(0.3)
    first = publish_elsewhere(url, topic, n)
    done.wait(300)
    sub.disconnect()
    sub.loop_stop()
    return {"messages": len(got), "msgs_per_s": len(got) / max(got[-1] - first, 1e-9)}


def manara(url: str, n: int, commit_seconds: float) -> dict[str, float]:
    topic = f"bench/{uuid.uuid4().hex[:8]}/m"
    with tempfile.TemporaryDirectory(prefix="manara-mqtt-bench-") as tmp:
        settings = Settings(home=Path(tmp) / "home", egress_allow=[urlsplit(url).hostname or "127.0.0.1"])  # type: ignore[call-arg]
        ws = init_workspace(settings).workspace
        op = ws.principal()
        spec = {"name": "bench", "source": {"type": "mqtt", "options": {"url": url, "topics": [topic], "idle_seconds": 3,
                                                             "types": {"id": "long", "sent_ns": "long"}}},
                "destination": {"dataset": "bench", "commit_seconds": commit_seconds, "commit_rows": 1_000_000}}  # fmt: skip
        apply_pipeline(ws, op, parse_spec(json.dumps(spec)))
        result: dict[str, Any] = {}
        _reset_peak_rss()
        runner = threading.Thread(target=lambda: result.update(r=run_pipeline(ws, op, "bench")))
        runner.start()
        time.sleep(1.0)  # connected and listening
        first = publish_elsewhere(url, topic, n)
        runner.join(600)
        peak = _peak_rss_mb()
        table = ws.catalog.load_table(("default", "bench"))
        data = table.scan(selected_fields=("id", "sent_ns", "received_at")).to_arrow().sort_by("id")
        sent = data.column("sent_ns").to_pylist()
        last_received = data.column("received_at").cast("int64").to_numpy().max() / 1e6
        snaps = sorted((s.timestamp_ms, int(s.summary["total-records"])) for s in table.snapshots()
                       if s.summary is not None and "total-records" in s.summary)  # fmt: skip
        latencies, start = [], 0
        for ts_ms, total in snaps:
            latencies.extend(ts_ms / 1e3 - sent[i] / 1e9 for i in range(start, min(total, len(sent))))
            start = max(start, total)
        ws.close()
        run = result["r"]
        return {
            "messages": run.rows_loaded,
            "msgs_per_s": run.rows_loaded / max(last_received - first, 1e-9),
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1e3,
            "commits": run.commits,
            "peak_rss_mb": peak,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--commit-seconds", type=float, default=1.0)
    ap.add_argument("--url")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    url, started = args.url, False
    if not url:
        env = {
            **os.environ,
            "MANARA_SERVICES_DIR": "/tmp/manara-services-bench",
            "MANARA_TEST_MQTT_PORT": "18839",
        }
        out = subprocess.run(
            ["bash", "scripts/services.sh", "start"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        url = next(
            (ln.split("=", 1)[1] for ln in out.stdout.splitlines() if ln.startswith("MANARA_TEST_MQTT_URL=")),
            None,
        )
        if not url:
            sys.exit(f"no MQTT broker: {out.stderr.strip()}")
        started = True
    try:
        runs: list[dict[str, Any]] = []
        for i in range(args.repeat):
            b = bare(url, args.messages)
            m = manara(url, args.messages, args.commit_seconds)
            runs.append(
                {"bare": b, "manara": m, "ratio": m["msgs_per_s"] / b["msgs_per_s"], "load": _loadavg()}
            )
            print(f"repeat {i + 1}: bare {b['msgs_per_s']:,.0f} msg/s, Manara {m['msgs_per_s']:,.0f} msg/s "
                  f"(ratio {runs[-1]['ratio']:.2f}), p50 {m['p50_ms']:.0f} ms, p99 {m['p99_ms']:.0f} ms, "
                  f"{m['commits']} commits, peak RSS {m['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
        med = {
            "bare_msgs_per_s": statistics.median(r["bare"]["msgs_per_s"] for r in runs),
            "manara_msgs_per_s": statistics.median(r["manara"]["msgs_per_s"] for r in runs),
            "ratio": statistics.median(r["ratio"] for r in runs),
            "p50_ms": statistics.median(r["manara"]["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["manara"]["p99_ms"] for r in runs),
            "peak_rss_mb": statistics.median(r["manara"]["peak_rss_mb"] for r in runs),
            "messages": args.messages, "commit_seconds": args.commit_seconds, "machine": machine_info(),
        }  # fmt: skip
        print(f"median: Manara {med['manara_msgs_per_s']:,.0f} msg/s = {med['ratio']:.2f}× the bare subscriber "
              f"({med['bare_msgs_per_s']:,.0f}); end-to-end p50 {med['p50_ms']:.0f} ms, p99 {med['p99_ms']:.0f} ms")  # fmt: skip
        if args.json:
            print(json.dumps({"median": med, "runs": runs}))
    finally:
        if started:
            subprocess.run(["bash", "scripts/services.sh", "stop"], cwd=ROOT, env={**os.environ,
                           "MANARA_SERVICES_DIR": "/tmp/manara-services-bench"}, check=False)  # fmt: skip


if __name__ == "__main__":
    main()
