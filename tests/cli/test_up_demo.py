"""`manara up --demo` as a real server process: ready, demo data served, and a restart reuses it all."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from manara.config import Settings

DEMO_DATASETS = {"citizen_requests", "machine_telemetry", "communes", "suppliers"}
ARABIC = re.compile(r"[\u0600-\u06FF]")
READY_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _server(home: Path, database_url: str | None, log: Path) -> Iterator[str]:
    """Run `manara up --demo` until the block ends; yields its base URL once /readyz answers 200."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANARA_")}
    env["MANARA_HOME"] = str(home)
    env["MANARA_LOG_LEVEL"] = "warning"
    if database_url:
        env["MANARA_DATABASE_URL"] = database_url
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "manara.cli.main", "up", "--demo", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready after {READY_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.25)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def _get(base: str, path: str, token: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)


def _sql(base: str, token: str, sql: str) -> list[dict[str, Any]]:
    resp = httpx.post(
        f"{base}/api/v1/sql", headers={"Authorization": f"Bearer {token}"}, json={"sql": sql}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["rows"]
    return rows


def test_up_demo_serves_and_restarts_on_same_workspace(
    settings: Settings, database_url: str | None, tmp_path: Path
) -> None:
    home = settings.home
    token_file = home / "demo-token"

    with _server(home, database_url, tmp_path / "first.log") as base:
        assert token_file.is_file()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert re.fullmatch(r"mnr_[A-Za-z0-9_-]{43}", token)
        assert token in (tmp_path / "first.log").read_text()  # printed for the operator too

        resp = _get(base, "/api/v1/datasets", token)
        assert resp.status_code == 200, resp.text
        first_listing = {d["name"]: d for d in resp.json()}
        assert set(first_listing) == DEMO_DATASETS | {"procedures__documents", "procedures__chunks"}
        assert all(d["rows"] > 0 and d["snapshot_id"] for d in first_listing.values())

        # the demo collection answers a Darija question with the procedure sheet
        found = httpx.post(
            f"{base}/api/v1/search",
            json={"query": "كيفاش نجدد البطاقة الوطنية؟", "collection": "procedures", "k": 3},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert found.status_code == 200, found.text
        assert any("cnie" in h["doc_id"] or "cin" in h["doc_id"] for h in found.json()["hits"])
        assert first_listing["suppliers"]["description"].startswith("Registre des fournisseurs")

        total = _sql(base, token, "SELECT count(*) AS n FROM citizen_requests")[0]["n"]
        assert total == first_listing["citizen_requests"]["rows"] > 1000
        by_province = _sql(
            base,
            token,
            "SELECT province, count(*) AS n FROM citizen_requests GROUP BY province ORDER BY n DESC",
        )
        assert by_province[0]["province"] == "Casablanca"
        assert sum(r["n"] for r in by_province) == total

        suppliers = _sql(base, token, "SELECT ice, raison_sociale FROM suppliers")
        assert suppliers
        assert any(ARABIC.search(r["raison_sociale"]) for r in suppliers)
        assert all(isinstance(r["ice"], str) and re.fullmatch(r"\d{15}", r["ice"]) for r in suppliers)
        assert any(r["ice"].startswith("0") for r in suppliers)  # leading zeros kept
        ice_type = next(
            c["type"]
            for c in _get(base, "/api/v1/datasets/suppliers", token).json()["columns"]
            if c["name"] == "ice"
        )
        assert ice_type == "string"

        docs = httpx.get(f"{base}/api/v1/docs", timeout=10)
        assert docs.status_code == 200
        assert "https://" not in docs.text
        assert "http://" not in docs.text

        assert httpx.get(f"{base}/api/v1/datasets", timeout=10).status_code == 401

    snapshot_ids = {name: d["snapshot_id"] for name, d in first_listing.items()}
    token_content = token_file.read_bytes()

    with _server(home, database_url, tmp_path / "second.log") as base:
        assert token_file.read_bytes() == token_content
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        resp = _get(base, "/api/v1/datasets", token)
        assert resp.status_code == 200, resp.text
        second_listing = {d["name"]: d for d in resp.json()}
        assert {n: d["snapshot_id"] for n, d in second_listing.items()} == snapshot_ids
        assert {n: d["rows"] for n, d in second_listing.items()} == {
            n: d["rows"] for n, d in first_listing.items()
        }
        assert _sql(base, token, "SELECT count(*) AS n FROM citizen_requests")[0]["n"] == total
        for name in DEMO_DATASETS:
            assert len(_get(base, f"/api/v1/datasets/{name}/history", token).json()) == 1
    loaded_line = re.compile(r"demo dataset \w+: [\d,]+ rows")
    assert len(loaded_line.findall((tmp_path / "first.log").read_text())) == len(DEMO_DATASETS)
    second_log = (tmp_path / "second.log").read_text()
    assert "demo datasets already loaded" in second_log
    assert not loaded_line.search(second_log)
