"""REST/JSON source: the records of an HTTP JSON API, page after page.

    source:
      type: rest
      options:
        url: https://erp.example.ma/api/v2/orders
        records: data.items                    # where the list of records is in the body
        params: {status: open}
        auth: {type: bearer, token: "${ERP_TOKEN}"}
        pagination: {type: cursor, cursor_param: after, cursor_path: meta.next}
        incremental: {field: updated_at, param: updated_since}
        rate_limit: 5                          # requests per second at most

**Pages.** Every page is one GET and one chunk. `pagination.type` says how the next page is asked
for: `none` (one request), `page` (`page_param` = start, start+1, …; `size_param`=`size` if given),
`offset` (`offset_param` = 0, then + the records received; `size_param`=`size` if given),
`cursor` (`cursor_param` = the value found at `cursor_path` in the previous body) or `link` (the
URL of the `Link: <…>; rel="next"` header). A `page` or `offset` pass ends at an empty page or at
a page shorter than `size`; a `cursor` pass when the body has no next cursor (or the page is
empty); a `link` pass when there is no next link. Every URL, the first one and every next-page
URL (a Link header may point anywhere), goes through the workspace's egress check before it is
requested. Credentials (`auth`, `headers`) are sent only to the origin (scheme, host and port)
of `url`: a next link to another host gets none. Redirects are not followed: a 3xx is an error
naming where it points (put that URL in the options).

**Cursor.** After each page: `{"next": {...}, "asked": …, "since": …}` where `next` says how to
ask for the following page (`{"page": n}`, `{"offset": n}`, `{"cursor": v}`, `{"url": u}`) and is
None once the pass is complete. `read(cursor)` continues from `next`, so a run that fails resumes
after the last committed page. Without `incremental`, a complete pass is read once: later runs
read nothing (the dataset is append-only; re-reading would duplicate every record). With
`incremental: {field, param}`, `since` is the greatest value of `field` seen so far and a later
run starts a new pass from the first page with `param=since`; `asked` is the value sent during
the current pass (kept so that a resumed pass asks the same question). The API must return the
records whose field is *greater* than the parameter: with "greater or equal" the last record is
loaded again by each run. Values are compared as JSON gives them (numbers as numbers, ISO-8601
timestamps as text, which orders them when they share one format and time zone).

**Records.** `records` is the dotted path to the list in the body ("" when the body is the list).
Each page's records become one Arrow batch, column by column (the union of the keys, in the order
first seen). Nested values (objects and lists) are stored as JSON text, so that every column is a
scalar type that Iceberg takes whatever the API nests; a column whose values have mixed types on
one page (a number and a string) is stored as JSON text too. An item of the list that is not a
JSON object goes to the quarantine with its position ("GET <url> page N, record i") and raw JSON.

**Errors and retries.** Connection errors, timeouts, 429 and 5xx are retried `max_retries` times
with exponential backoff (0.5 s, 1 s, 2 s, … up to 60 s) or after the server's `Retry-After`
(seconds or an HTTP date; at most 10 minutes). Any other status, a body that is not JSON or a
`records` path that is not in the body is one readable error naming the status and the URL: the
run fails and the next one resumes from the last committed page. Error messages never show the
`auth` values, and secret-looking query parameters (token, key, password…) are hidden.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from manara.connect.protocol import Chunk, Connector, Context, Cursor, Options, rejects_table
from manara.errors import BadRequest

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
RETRY_AFTER_CAP_S = 600.0
PAYLOAD_LIMIT = 100_000  # characters of a quarantined record's JSON kept as payload

_sleep = time.sleep  # tests replace it (the backoff and the rate limit sleep through it)
_monotonic = time.monotonic


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: str = Field(description="sent as 'Authorization: Bearer <token>' (write ${ENV_VAR})")


class BasicAuth(_Strict):
    type: Literal["basic"]
    username: str
    password: str = Field(description="write ${ENV_VAR} to keep it out of the stored spec")


class ApiKeyAuth(_Strict):
    type: Literal["api_key"]
    name: str = Field(description="the header or query parameter name, e.g. X-API-Key or api_key")
    value: str = Field(description="the key (write ${ENV_VAR})")
    in_: Literal["header", "query"] = Field("header", alias="in")


Auth = Annotated[BearerAuth | BasicAuth | ApiKeyAuth, Field(discriminator="type")]


class Pagination(_Strict):
    type: Literal["none", "page", "offset", "cursor", "link"] = "none"
    page_param: str = "page"
    size_param: str | None = None
    size: int | None = Field(None, ge=1)
    start: int = Field(1, description="the number of the first page")
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    cursor_path: str | None = Field(None, description="dotted path of the next cursor in the body")

    @model_validator(mode="after")
    def _complete(self) -> Pagination:
        if self.type == "cursor" and not self.cursor_path:
            raise ValueError("cursor pagination needs cursor_path: where the next cursor is in the body")
        if self.size is not None and self.size_param is None and self.type in ("page", "offset"):
            raise ValueError("size needs size_param: the query parameter that asks for that page size")
        return self


class Incremental(_Strict):
    field: str = Field(description="a record field that only grows (updated_at, an id)")
    param: str = Field(description="the query parameter that asks for records newer than a value")


class RestOptions(Options):
    url: str = Field(description="the API endpoint (http or https) of the first page")
    records: str = Field(
        "", description="dotted path of the list of records in the JSON body, e.g. data.items ('' = the body)"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="query parameters of every request")
    headers: dict[str, str] = Field(default_factory=dict, description="headers of every request")
    auth: Auth | None = Field(None, description="{type: bearer|basic|api_key, …}")
    pagination: Pagination = Field(
        default_factory=lambda: Pagination.model_validate({}),
        description="{type: none|page|offset|cursor|link, …}",
    )
    rate_limit: float | None = Field(None, gt=0, description="requests per second at most")
    max_retries: int = Field(5, ge=0, le=20, description="retries of a connection error, 429 or 5xx")
    timeout: float = Field(30.0, gt=0, le=600, description="seconds to wait for a response")
    incremental: Incremental | None = Field(
        None, description="{field, param}: later runs ask only for records whose field is newer"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL with a host")
        return v


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _at_path(body: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path in a JSON body ('' is the body itself)."""
    value = body
    for part in [p for p in path.split(".") if p] if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


_JSON_KINDS = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def _greater(a: Any, b: Any) -> bool:
    """a > b for JSON values (numbers, text); mixed kinds compare as text."""
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return float(a) > float(b) if isinstance(a, float) or isinstance(b, float) else int(a) > int(b)
    return str(a) > str(b)


def _column(values: list[Any]) -> pa.Array:
    """One column of a page: nested values as JSON text; mixed types as JSON text too."""
    if any(isinstance(v, dict | list) for v in values):
        return pa.array(
            [
                None if v is None else json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
                for v in values
            ],
            type=pa.string(),
        )
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array(
            [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
            type=pa.string(),
        )


def records_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """JSON objects as one Arrow batch: the union of their keys, in the order first seen."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = {name: _column([row.get(name) for row in rows]) for name in names}
    return pa.RecordBatch.from_pydict(columns)


class RestSource:
    def __init__(self, options: RestOptions, context: Context) -> None:
        self.options = options
        self.context = context
        self.origin = _origin(options.url)
        self.secrets = self._secrets()
        self._last_request: float | None = None
        self._check(options.url)

    # --- what is shown, what is checked ---

    def _secrets(self) -> list[str]:
        auth = self.options.auth
        if isinstance(auth, BearerAuth):
            values = [auth.token]
        elif isinstance(auth, BasicAuth):
            values = [auth.password, base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()]
        elif isinstance(auth, ApiKeyAuth):
            values = [auth.value]
        else:
            values = []
        return [v for v in values if v]

    def _shown(self, url: str) -> str:
        from manara.govern.egress import redact

        text = redact(url)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        self.context.check_egress(f"{parts.scheme}://{parts.netloc}{parts.path}")

    # --- reading ---

    def read(self, cursor: Cursor | None) -> Iterator[Chunk]:
        opts = self.options
        cursor = cursor or {}
        since = cursor.get("since")
        if cursor and cursor.get("next") is None:
            if opts.incremental is None:
                return  # the pass is complete; a new one would load every record again
            nxt: dict[str, Any] = {}
            asked = since
        else:
            nxt = dict(cursor.get("next") or {})
            asked = cursor.get("asked", since)
        pag = opts.pagination
        with httpx.Client(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(opts.timeout, connect=min(opts.timeout, 15.0)),
        ) as client:
            page_no = 0
            offset = int(nxt.get("offset", 0))
            page = int(nxt.get("page", pag.start))
            token = nxt.get("cursor")
            url: str = nxt.get("url") or opts.url
            while True:
                page_no += 1
                params: dict[str, Any] = {}
                if pag.type != "link" or "url" not in nxt:
                    params.update(opts.params)
                    if opts.incremental is not None and asked is not None:
                        params[opts.incremental.param] = asked
                    if pag.size is not None and pag.size_param:
                        params[pag.size_param] = pag.size
                    if pag.type == "page":
                        params[pag.page_param] = page
                    elif pag.type == "offset":
                        params[pag.offset_param] = offset
                    elif pag.type == "cursor" and token is not None:
                        params[pag.cursor_param] = token
                request = client.build_request("GET", url, params=params or None)
                self._check(str(request.url))
                shown = self._shown(str(request.url))
                response = self._send(client, request, shown)
                where = f"GET {shown} page {page_no}"
                body = self._json(response, where)
                rows, rejects = self._records(body, where)
                for row in rows:
                    value = row.get(opts.incremental.field) if opts.incremental else None
                    if value is not None and (since is None or _greater(value, since)):
                        since = value
                count = len(rows) + (rejects.num_rows if rejects is not None else 0)
                # where the next page is (None: the pass is complete)
                following: dict[str, Any] | None = None
                short = count == 0 or (pag.size is not None and count < pag.size)
                if pag.type == "page" and not short:
                    page += 1
                    following = {"page": page}
                elif pag.type == "offset" and not short:
                    offset += count
                    following = {"offset": offset}
                elif pag.type == "cursor" and count:
                    found, token = _at_path(body, pag.cursor_path or "")
                    if found and token not in (None, ""):
                        following = {"cursor": token}
                elif pag.type == "link":
                    link = response.links.get("next", {}).get("url")
                    if link:
                        following = {"url": urljoin(str(response.url), link)}
                new_cursor: Cursor = {"next": following, "since": since}
                if opts.incremental is not None:
                    new_cursor["asked"] = asked
                batch = records_batch(rows) if rows else None
                yield Chunk(
                    batch, new_cursor, f"GET {shown} page {page_no}", rejects=rejects,
                    bytes_read=len(response.content),
                )  # fmt: skip
                if following is None:
                    return
                nxt = following
                url = following.get("url", url)

    def _headers(self, url: httpx.URL) -> dict[str, str]:
        """The options' headers and credentials, for the origin of `url` only."""
        if _origin(str(url)) != self.origin:
            return {}
        headers = dict(self.options.headers)
        auth = self.options.auth
        if isinstance(auth, BearerAuth):
            headers["Authorization"] = f"Bearer {auth.token}"
        elif isinstance(auth, BasicAuth):
            pair = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {pair}"
        elif isinstance(auth, ApiKeyAuth) and auth.in_ == "header":
            headers[auth.name] = auth.value
        return headers

    def _send(self, client: httpx.Client, request: httpx.Request, shown: str) -> httpx.Response:
        """The response, after the retries of connection errors, 429 and 5xx; BadRequest otherwise."""
        auth = self.options.auth
        url = request.url
        if isinstance(auth, ApiKeyAuth) and auth.in_ == "query" and _origin(str(url)) == self.origin:
            url = url.copy_merge_params({auth.name: auth.value})
        attempt = 0
        while True:
            self._pace()
            why: str
            wait: float | None = None
            try:
                response = client.get(url, headers=self._headers(url))
            except httpx.TransportError as err:
                why = f"{type(err).__name__}"
            else:
                status = response.status_code
                if status < 300:
                    return response
                if status == 429 or status >= 500:
                    why = f"HTTP {status} {response.reason_phrase}".strip()
                    wait = _retry_after(response.headers.get("Retry-After"))
                elif 300 <= status < 400:
                    target = self._shown(response.headers.get("Location", "?"))
                    raise BadRequest(
                        f"rest source: GET {shown}: HTTP {status}, redirected to {target} "
                        "(redirects are not followed: put that URL in the options)"
                    )
                else:
                    raise BadRequest(
                        f"rest source: GET {shown}: HTTP {status} {response.reason_phrase}".strip()
                        + self._hint(status)
                    )
            if attempt >= self.options.max_retries:
                raise BadRequest(f"rest source: GET {shown}: {why} (after {attempt} retries)")
            delay = wait if wait is not None else min(BACKOFF_BASE_S * 2**attempt, BACKOFF_CAP_S)
            attempt += 1
            _sleep(delay)

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return " (check the auth option)" if self.options.auth else " (the API may need the auth option)"
        return ""

    def _pace(self) -> None:
        rate = self.options.rate_limit
        if rate is not None:
            now = _monotonic()
            if self._last_request is not None:
                wait = self._last_request + 1.0 / rate - now
                if wait > 0:
                    _sleep(wait)
                    now += wait
            self._last_request = now

    def _json(self, response: httpx.Response, where: str) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            kind = response.headers.get("Content-Type", "no Content-Type").split(";")[0]
            raise BadRequest(
                f"rest source: {where}: the response is not JSON ({kind}, {len(response.content):,} bytes)"
            ) from None

    def _records(self, body: Any, where: str) -> tuple[list[dict[str, Any]], pa.Table | None]:
        path = self.options.records
        found, items = _at_path(body, path)
        if not found:
            raise BadRequest(f"rest source: {where}: no '{path}' in the response (the records option)")
        if items is None:
            items = []
        if not isinstance(items, list):
            what = f"'{path}'" if path else "the body"
            raise BadRequest(
                f"rest source: {where}: {what} is a JSON {_JSON_KINDS.get(type(items), 'object')}, not a list of records "
                "(set the records option to the path of the list)"
            )
        rows: list[dict[str, Any]] = []
        bad: list[tuple[str, str, str | None]] = []
        for i, item in enumerate(items, start=1):
            if isinstance(item, dict):
                rows.append(item)
            else:
                raw = json.dumps(item, ensure_ascii=False)[:PAYLOAD_LIMIT]
                kind = _JSON_KINDS.get(type(item), type(item).__name__)
                bad.append((f"the record is a JSON {kind}, not an object", f"{where}, record {i}", raw))
        return rows, rejects_table(bad) if bad else None


CONNECTOR = Connector(
    name="rest",
    kind="source",
    summary="records of an HTTP JSON API: page, offset, cursor or Link pagination, auth, retries, incremental",
    options=RestOptions,
    factory=RestSource,
)
