"""Checks shared by the API tests."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(resp: Any, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and stable type slug; returns its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM, resp.headers["content-type"]
    body: dict[str, Any] = resp.json()
    assert body["type"].endswith(f"/problems/{slug}"), body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body
