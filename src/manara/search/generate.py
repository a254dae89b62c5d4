"""Optional generated answers through the organisation's own OpenAI-compatible chat server.

The server gets the question and the numbered passages that were retrieved for it, and is told to
answer only from them, citing passages as [n]. The generated text is kept only if it cites at
least one passage and every [n] it cites is one of the passages it was given; otherwise the
extractive answer stands, with a note. Citations always point at stored text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx

from manara.models.embeddings import EmbeddingError

if TYPE_CHECKING:
    from manara.search.answer import Answer
    from manara.search.retrieve import SearchHit
    from manara.workspace import Workspace

_CITE = re.compile(r"\[(\d+)\]")
SYSTEM = (
    "You answer questions about official procedures using ONLY the numbered passages given. "
    "Answer in the language of the question, briefly. Cite every statement with the passage number "
    "in square brackets, e.g. [2]. If the passages do not contain the answer, say so."
)


def _endpoint(spec: str) -> tuple[str, str]:
    kind, _, rest = spec.partition(":")
    url, _, model = rest.partition("#")
    if kind != "openai" or not url.startswith(("http://", "https://")) or not model:
        raise EmbeddingError(f"chat model '{spec}': write openai:http(s)://HOST[:PORT]/v1#MODEL")
    return url.rstrip("/") + "/chat/completions", model


def generate_answer(ws: Workspace, answer: Answer, hits: list[SearchHit]) -> None:
    """Replace `answer.answer` with a generated one if the server's citations all check out."""
    from manara.search.answer import Citation

    assert ws.settings.chat_model
    url, model = _endpoint(ws.settings.chat_model)
    passages = "\n\n".join(f"[{i}] ({h.title or h.source}) {h.text}" for i, h in enumerate(hits, 1))
    key = ws.settings.chat_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    body = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {answer.question}"},
        ],
    }
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=120, trust_env=False)
        response.raise_for_status()
        text = str(response.json()["choices"][0]["message"]["content"]).strip()
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
        answer.message = f"generation failed ({err}); the extractive answer is shown"
        return
    cited = sorted({int(n) for n in _CITE.findall(text)})
    if not cited or any(not 1 <= n <= len(hits) for n in cited):
        answer.message = f"the generated answer cited passages {cited or 'none'} of {len(hits)}; the extractive answer is shown"
        return
    answer.answer = text
    answer.generated = True
    extra = []
    for n in cited:
        h = hits[n - 1]
        extra.append(
            Citation(n, h.doc_id, h.title, h.source, h.page, h.char_start, h.char_end, h.text, h.chunk_id)
        )
    answer.citations = extra
