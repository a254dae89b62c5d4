"""REST/JSON source against a real HTTP server on 127.0.0.1 (a fake paginated API of 250 records):
every pagination type through real pipelines, resume after any page, auth, retries, readable
errors, the quarantine of non-object records, egress checks and incremental runs.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from manara.config import Settings
from manara.connect.pipelines import apply_pipeline, committed_state, parse_spec, run_pipeline
from manara.connect.protocol import Chunk, Context
from manara.connect.sources import rest
from manara.connect.sources.rest import CONNECTOR, RestSource
from manara.errors import BadRequest, Forbidden
from manara.govern.principal import Principal
from manara.lake.catalog import identifier
from manara.workspace import Workspace

N = 250
SECRET = "s3cr3t-token"


def record(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"سجل {i}", "updated_at": i, "tags": ["a", i], "meta": {"n": i}}


@dataclass
class Api:
    """The fake API's state: records, scripted responses, required credentials, requests seen."""

    base: str = ""
    records: list[dict[str, Any]] = field(default_factory=lambda: [record(i) for i in range(1, N + 1)])
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    require: tuple[str, str, str] | None = None  # ("header"|"query", name, value)
    seen: list[str] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    api: Api

    def log_message(self, *args: Any) -> None:
        pass

    def send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802
        api = self.api
        api.seen.append(self.path)
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if api.script:
            status, headers, body = api.script.pop(0)
            return self.send(status, body, headers)
        if api.require:
            where, name, value = api.require
            got = self.headers.get(name) if where == "header" else q.get(name)
            if got != value:
                return self.send(401, {"error": "unauthorised"})
        rows = [r for r in api.records if "since" not in q or r["updated_at"] > int(q["since"])]
        path = parts.path
        if path == "/all":
            return self.send(200, {"data": {"items": rows}})
        if path == "/page":
            size, page = int(q.get("per_page", 10)), int(q["page"])
            return self.send(200, {"data": {"items": rows[(page - 1) * size : page * size]}})
        if path == "/offset":
            size, offset = int(q["limit"]), int(q["offset"])
            return self.send(200, {"data": {"items": rows[offset : offset + size]}})
        if path == "/cursor":
            after = int(q.get("after", 0))
            page = [r for r in rows if r["id"] > after][:40]
            more = page and page[-1]["id"] < rows[-1]["id"]
            return self.send(
                200, {"data": {"items": page}, "meta": {"next": str(page[-1]["id"]) if more else None}}
            )
        if path == "/link":
            page = int(q.get("p", 1))
            items = rows[(page - 1) * 60 : page * 60]
            headers = {"Content-Type": "application/json"}
            since = f"&since={q['since']}" if "since" in q else ""
            if page * 60 < len(rows):
                headers["Link"] = (
                    f'<{api.base}/link?p={page + 1}{since}>; rel="next", <{api.base}/link?p=1>; rel="first"'
                )
            return self.send(200, items, headers)
        if path == "/elsewhere":
            return self.send(200, [record(1)], {"Link": '<http://10.9.8.7/steal>; rel="next"'})
        if path == "/mixed":
            return self.send(200, [record(1), 5, "x", None, record(2)])
        return self.send(404, {"error": "no such endpoint"})


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api()
    handler = type("BoundHandler", (Handler,), {"api": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with the loopback host allowed out (the fake API)."""
    return settings.model_copy(update={"egress_allow": ["127.0.0.1"]})


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sleeps the source asks for (none actually slept)."""
    asked: list[float] = []
    monkeypatch.setattr(rest, "_sleep", asked.append)
    return asked


PAGINATIONS: dict[str, dict[str, Any]] = {
    "none": {"path": "/all", "records": "data.items", "pagination": {"type": "none"}},
    "page": {
        "path": "/page",
        "records": "data.items",
        "pagination": {"type": "page", "page_param": "page", "size_param": "per_page", "size": 100},
    },
    "offset": {
        "path": "/offset",
        "records": "data.items",
        "pagination": {"type": "offset", "offset_param": "offset", "size_param": "limit", "size": 50},
    },
    "cursor": {
        "path": "/cursor",
        "records": "data.items",
        "pagination": {"type": "cursor", "cursor_param": "after", "cursor_path": "meta.next"},
    },
    "link": {"path": "/link", "records": "", "pagination": {"type": "link"}},
}


def options(api: Api, kind: str, **more: Any) -> dict[str, Any]:
    o = dict(PAGINATIONS[kind])
    o["url"] = api.base + o.pop("path")
    return {**o, **more}


def spec(opts: dict[str, Any], name: str = "orders") -> str:
    return f"""
name: {name}
source:
  type: rest
  options: {json.dumps(opts, ensure_ascii=False)}
destination:
  dataset: {name}
  commit_rows: 120
"""


def source(opts: dict[str, Any], check: Any = None) -> RestSource:
    ctx = Context(tmp_dir=None) if check is None else Context(tmp_dir=None, check_egress=check)
    created = CONNECTOR.create(opts, ctx)
    assert isinstance(created, RestSource)
    return created


def ids(chunks: list[Chunk]) -> list[int]:
    return [i for c in chunks if c.batch is not None for i in c.batch.column("id").to_pylist()]


def dataset(ws: Workspace, operator: Principal, name: str = "orders") -> list[dict[str, Any]]:
    table = ws.catalog.load_table(identifier(operator.tenant, name))
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("kind", list(PAGINATIONS))
def test_every_pagination_loads_every_record_once(
    ws: Workspace, operator: Principal, api: Api, kind: str
) -> None:
    apply_pipeline(ws, operator, parse_spec(spec(options(api, kind))))
    result = run_pipeline(ws, operator, "orders")
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", N, 0), result.error
    rows = dataset(ws, operator)
    assert [r["id"] for r in rows] == list(range(1, N + 1))
    # nested values are JSON text; Arabic text intact
    assert rows[4]["name"] == "سجل 5" and json.loads(rows[4]["tags"]) == ["a", 5]
    assert json.loads(rows[4]["meta"]) == {"n": 5}
    # a complete pass without incremental is read once
    again = run_pipeline(ws, operator, "orders")
    assert (again.status, again.rows_loaded) == ("succeeded", 0)


@pytest.mark.parametrize("kind", ["page", "offset", "cursor", "link"])
def test_reading_resumes_after_any_page(api: Api, kind: str) -> None:
    chunks = list(source(options(api, kind)).read(None))
    assert ids(chunks) == list(range(1, N + 1)) and len(chunks) > 2
    assert chunks[-1].cursor["next"] is None
    for k in range(len(chunks) - 1):
        before = ids(chunks[: k + 1])
        rest_ = ids(list(source(options(api, kind)).read(json.loads(json.dumps(chunks[k].cursor)))))
        assert before + rest_ == list(range(1, N + 1)), k
    assert list(source(options(api, kind)).read(chunks[-1].cursor)) == []


@pytest.mark.parametrize(
    ("auth", "require"),
    [
        ({"type": "bearer", "token": SECRET}, ("header", "Authorization", f"Bearer {SECRET}")),
        (
            {"type": "basic", "username": "reader", "password": SECRET},
            ("header", "Authorization", "Basic " + base64.b64encode(f"reader:{SECRET}".encode()).decode()),
        ),
        ({"type": "api_key", "name": "X-Api-Key", "value": SECRET}, ("header", "X-Api-Key", SECRET)),
        ({"type": "api_key", "name": "key", "value": SECRET, "in": "query"}, ("query", "key", SECRET)),
    ],
)
def test_credentials_reach_the_api_and_stay_out_of_errors(
    api: Api, auth: dict[str, Any], require: tuple[str, str, str]
) -> None:
    api.require = require
    assert ids(list(source(options(api, "page", auth=auth)).read(None))) == list(range(1, N + 1))
    wrong = {**auth, **{k: "wrong" for k in ("token", "password", "value") if k in auth}}
    with pytest.raises(BadRequest) as caught:
        list(source(options(api, "page", auth=wrong)).read(None))
    detail = caught.value.detail
    assert "HTTP 401" in detail and "/page" in detail and "check the auth option" in detail
    assert "wrong" not in detail and SECRET not in detail and "\n" not in detail
    api.require = ("header", "X", "y")
    with pytest.raises(BadRequest) as caught:
        list(source(options(api, "page", auth=auth)).read(None))
    assert SECRET not in caught.value.detail


def test_429_waits_as_the_server_says_and_5xx_backs_off(api: Api, sleeps: list[float]) -> None:
    api.script = [(429, {"Retry-After": "7"}, b"slow down"), (429, {"Retry-After": "0"}, b"")]
    assert ids(list(source(options(api, "none")).read(None))) == list(range(1, N + 1))
    assert sleeps == [7.0, 0.0]
    sleeps.clear()
    api.script = [(500, {}, b"oops"), (503, {}, b"oops")]
    assert ids(list(source(options(api, "none")).read(None))) == list(range(1, N + 1))
    assert sleeps == [0.5, 1.0]
    sleeps.clear()
    api.script = [(503, {}, b"")] * 3
    with pytest.raises(BadRequest, match=r"HTTP 503 .*after 2 retries"):
        list(source(options(api, "none", max_retries=2)).read(None))
    assert sleeps == [0.5, 1.0]


def test_retry_after_as_an_http_date() -> None:
    assert rest._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert rest._retry_after("3600") == rest.RETRY_AFTER_CAP_S
    assert rest._retry_after("soon") is None


def test_rate_limit_spaces_requests(api: Api, sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]  # requests arrive at once (the server answers in no time): each waits 0.5 s

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(rest, "_monotonic", lambda: clock[0])
    monkeypatch.setattr(rest, "_sleep", sleep)
    chunks = list(source(options(api, "page", rate_limit=2)).read(None))
    assert len(chunks) == 3 and sleeps == [0.5, 0.5]


def test_errors_are_one_readable_line(api: Api) -> None:
    with pytest.raises(BadRequest, match=r"GET http://127\.0\.0\.1:\d+/nowhere: HTTP 404 Not Found"):
        list(source({"url": api.base + "/nowhere"}).read(None))
    api.script = [(200, {"Content-Type": "text/html"}, b"<html>maintenance</html>")]
    with pytest.raises(BadRequest, match=r"/all page 1: the response is not JSON \(text/html, 24 bytes\)"):
        list(source(options(api, "none")).read(None))
    with pytest.raises(BadRequest, match="no 'data.rows' in the response"):
        list(source(options(api, "none", records="data.rows")).read(None))
    with pytest.raises(BadRequest, match="the body is a JSON object, not a list of records"):
        list(source(options(api, "none", records="")).read(None))
    api.script = [(302, {"Location": "http://10.9.8.7/x"}, b"")]
    with pytest.raises(BadRequest, match="redirected to http://10.9.8.7/x"):
        list(source(options(api, "none")).read(None))


def test_a_failed_run_resumes_from_the_last_committed_page(
    ws: Workspace, operator: Principal, api: Api
) -> None:
    opts = options(api, "offset")
    apply_pipeline(ws, operator, parse_spec(spec(opts)))
    # pages of 50, commits of 120 records: fail on the 4th request (after the first commit, at 150 rows)
    real = Handler.do_GET
    calls = {"n": 0}

    def flaky(self: Handler) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            return self.send(404, {"error": "gone"})
        return real(self)

    Handler.do_GET = flaky  # type: ignore[method-assign]
    try:
        first = run_pipeline(ws, operator, "orders")
    finally:
        Handler.do_GET = real  # type: ignore[method-assign]
    assert first.status == "failed" and "HTTP 404" in (first.error or ""), first.error
    committed = first.rows_loaded
    assert 0 < committed < N
    second = run_pipeline(ws, operator, "orders")
    assert second.status == "succeeded", second.error
    assert committed + second.rows_loaded == N
    assert [r["id"] for r in dataset(ws, operator)] == list(range(1, N + 1))


def test_records_that_are_not_objects_are_quarantined(ws: Workspace, operator: Principal, api: Api) -> None:
    chunks = list(source({"url": api.base + "/mixed"}).read(None))
    assert ids(chunks) == [1, 2]
    rejects = chunks[0].rejects
    assert rejects is not None
    got = rejects.to_pylist()
    assert [r["payload"] for r in got] == ["5", '"x"', "null"]
    assert got[0]["reason"] == "the record is a JSON number, not an object"
    assert got[1]["position"] == f"GET {api.base}/mixed page 1, record 3"
    apply_pipeline(ws, operator, parse_spec(spec({"url": api.base + "/mixed"})))
    result = run_pipeline(ws, operator, "orders")
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 2, 3), result.error


def test_egress_is_checked_before_any_request_and_for_next_links(
    ws: Workspace, operator: Principal, api: Api
) -> None:
    with pytest.raises(Forbidden) as refused:
        apply_pipeline(ws, operator, parse_spec(spec({"url": "http://10.9.8.7/api", "auth": {"type": "bearer",
                                                                                          "token": SECRET}})))  # fmt: skip
    assert "10.9.8.7" in refused.value.detail and SECRET not in refused.value.detail
    asked: list[str] = []

    def check(url: str) -> None:
        asked.append(url)
        if "10.9.8.7" in url:
            raise Forbidden(f"egress to {url} refused")

    with pytest.raises(Forbidden, match="10.9.8.7"):
        source({"url": "http://10.9.8.7/api"}, check)
    assert asked == ["http://10.9.8.7/api"] and api.seen == []
    asked.clear()
    src = source({"url": api.base + "/elsewhere", "pagination": {"type": "link"}}, check)
    read = src.read(None)
    first = next(read)
    assert ids([first]) == [1] and first.cursor["next"] == {"url": "http://10.9.8.7/steal"}
    with pytest.raises(Forbidden, match="10.9.8.7"):
        next(read)
    assert asked[-1] == "http://10.9.8.7/steal" and api.seen == ["/elsewhere"]
    # through a pipeline, the workspace's own check refuses the link
    apply_pipeline(
        ws, operator, parse_spec(spec({"url": api.base + "/elsewhere", "pagination": {"type": "link"}}))
    )
    result = run_pipeline(ws, operator, "orders")
    assert result.status == "failed" and "10.9.8.7" in (result.error or ""), result.error


@pytest.mark.parametrize("kind", ["page", "cursor", "link"])
def test_incremental_runs_ask_only_for_newer_records(
    ws: Workspace, operator: Principal, api: Api, kind: str
) -> None:
    opts = options(api, kind, incremental={"field": "updated_at", "param": "since"})
    apply_pipeline(ws, operator, parse_spec(spec(opts)))
    first = run_pipeline(ws, operator, "orders")
    assert (first.status, first.rows_loaded) == ("succeeded", N), first.error
    state = committed_state(ws.catalog.load_table(identifier(operator.tenant, "orders")), "orders")
    assert state is not None and state["cursor"]["since"] == N and state["cursor"]["next"] is None
    assert run_pipeline(ws, operator, "orders").rows_loaded == 0
    assert "since=250" in api.seen[-1]
    api.records += [record(i) for i in range(N + 1, N + 8)]
    api.seen.clear()
    second = run_pipeline(ws, operator, "orders")
    assert (second.status, second.rows_loaded) == ("succeeded", 7), second.error
    assert api.seen and all("since=250" in p for p in api.seen)
    assert [r["id"] for r in dataset(ws, operator)] == list(range(1, N + 8))


def test_bad_options_are_one_line() -> None:
    with pytest.raises(BadRequest, match="option 'url'"):
        CONNECTOR.create({"url": "ftp://x/y"}, Context(tmp_dir=None))
    with pytest.raises(BadRequest, match="cursor_path"):
        CONNECTOR.create({"url": "http://x/y", "pagination": {"type": "cursor"}}, Context(tmp_dir=None))
    with pytest.raises(BadRequest, match="option 'auth"):
        CONNECTOR.create({"url": "http://x/y", "auth": {"type": "oauth"}}, Context(tmp_dir=None))
