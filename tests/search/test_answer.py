"""Cited extractive answers, the no-answer threshold, and generation whose citations are checked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from pyiceberg.expressions import EqualTo

from manara.govern.principal import Principal
from manara.search.answer import answer_question
from manara.workspace import Workspace


def stored_text(ws: Workspace, operator: Principal, doc_id: str) -> str:
    table = ws.catalog.load_table((operator.tenant, "procedures__documents"))
    return str(table.scan(row_filter=EqualTo("doc_id", doc_id)).to_arrow().column("text")[0].as_py())


def test_answer_quotes_the_supporting_sentence_with_exact_offsets(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    a = answer_question(
        ws, operator, docs_collection, "Combien coûte le timbre fiscal du passeport ?", threshold=0.0
    )
    assert a.found and "500 dirhams" in (a.answer or "")
    c = a.citations[0]
    assert c.doc_id == "passeport-fr"
    assert stored_text(ws, operator, c.doc_id)[c.char_start : c.char_end] == c.quote


def test_darija_question_is_answered_from_the_arabic_source(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    a = answer_question(
        ws, operator, docs_collection, "بشحال كيتخلص التجديد ديال البطاقة الوطنية؟", threshold=0.0
    )
    assert a.found and a.citations[0].doc_id == "cin-ar"
    assert "75" in (a.answer or "")


def test_below_the_threshold_there_is_no_answer(
    ws: Workspace, operator: Principal, docs_collection: str
) -> None:
    a = answer_question(
        ws, operator, docs_collection, "Combien coûte le timbre fiscal du passeport ?", threshold=1.5
    )
    assert not a.found and a.answer is None and a.citations == []
    assert a.message and "no answer" in a.message


class _ChatServer(BaseHTTPRequestHandler):
    reply = ""
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append(body)
        out = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": type(self).reply}}]}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"openai:http://127.0.0.1:{server.server_port}/v1#local-chat"
    server.shutdown()


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("Le timbre fiscal coûte 500 dirhams [1].", True),
        ("Le timbre coûte 500 dirhams [9].", False),  # cites a passage it was never given
        ("Le timbre coûte 500 dirhams.", False),  # cites nothing
    ],
)
def test_generated_answers_keep_only_checked_citations(
    ws: Workspace, operator: Principal, docs_collection: str, chat_url: str, reply: str, kept: bool
) -> None:
    _ChatServer.reply = reply
    ws.settings.chat_model = chat_url
    a = answer_question(
        ws, operator, docs_collection, "Combien coûte le timbre fiscal du passeport ?", threshold=0.0
    )
    assert _ChatServer.seen and "Passages" in _ChatServer.seen[-1]["messages"][1]["content"]
    assert a.generated is kept
    if kept:
        assert a.answer == reply and a.citations[0].n == 1
    else:
        assert a.answer != reply and "extractive" in (a.message or "")
        assert "500 dirhams" in (a.answer or "")
