"""The `sentence-transformers:DIR` embedding backend, end to end on real torch models (no mocks).

The model folders are built here, offline: a tiny BERT (hidden size 16, fixed-seed weights) with a
word-level fast tokenizer, assembled with sentence-transformers' own Transformer and mean Pooling
modules and saved with `SentenceTransformer.save`. The expected vectors come from that same folder
loaded straight with `SentenceTransformer`, so the backend's loading, prompt choice, normalisation
and dtype are checked against the library itself, then through a real collection and search.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from manara.config import Settings
from manara.govern.principal import Principal
from manara.models.embeddings import EmbeddingError, SentenceTransformersBackend, load_backend
from manara.search.collections import create_collection, get_collection
from manara.search.ingest import TextDocument, ingest_texts
from manara.search.retrieve import search
from manara.workspace import Workspace

st = pytest.importorskip(
    "sentence_transformers",
    reason="optional backend: pip install '.[sentence-transformers]' (needs torch) to run these tests",
)
# sentence-transformers' own dependencies, and its modules to assemble a model from
tokenizers = pytest.importorskip("tokenizers")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
modules = pytest.importorskip("sentence_transformers.sentence_transformer.modules")

DIM = 16
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    ["cat", "dog", "horse", "bird", "kitten", "puppy", "bank", "money", "loan", "tax", "credit", "salary"]
    + ["rain", "snow", "wind", "storm", "cloud", "the", "a", "and", "with", "of", "play", "gives", "takes"]
    + ["come", "at", "home", "notes", "forecast", "query", "passage", "document", ":", "!", ","]
)
VOCAB = {w: i for i, w in enumerate(SPECIALS + WORDS)}
PASSAGE_PROMPTS = {"query": "query: ", "passage": "passage: "}
DOCUMENT_PROMPTS = {"query": "query: ", "document": "document: "}
TEXTS = ["The cat and the dog", "bank LOAN tax", "a storm, with snow!", "zebra"]


# --- building model folders ------------------------------------------------------------------------


def save_bert(folder: Path) -> None:
    """A Hugging Face folder: a 2-layer BERT with fixed weights and its fast tokenizer."""
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=VOCAB, unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        pad_token_id=VOCAB["[PAD]"],
    )
    with torch.random.fork_rng():
        torch.manual_seed(20240601)
        model = transformers.BertModel(config).eval()
    model.save_pretrained(folder)
    fast.save_pretrained(folder)


def save_sentence_transformer(bert: Path, folder: Path, prompts: dict[str, str] | None) -> Path:
    transformer = modules.Transformer(str(bert), max_seq_length=64)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), "mean")
    model = st.SentenceTransformer(modules=[transformer, pooling], prompts=prompts, device="cpu")
    model.save(str(folder))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three models on the same weights: E5-style query/passage prompts, query/document, none."""
    root = tmp_path_factory.mktemp("st-models")
    save_bert(root / "bert")
    return {
        "passage": save_sentence_transformer(root / "bert", root / "tiny-st", PASSAGE_PROMPTS),
        "document": save_sentence_transformer(root / "bert", root / "tiny-st-doc", DOCUMENT_PROMPTS),
        "none": save_sentence_transformer(root / "bert", root / "tiny-st-plain", None),
    }


def direct(folder: Path, texts: list[str], prompt_name: str | None = None) -> np.ndarray:
    """The vectors sentence-transformers itself gives for the folder, computed without the backend."""
    model = st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return model.encode(texts, prompt_name=prompt_name, normalize_embeddings=True)


# --- the backend on its own ------------------------------------------------------------------------


def test_passages_match_sentence_transformers_itself(folders: dict[str, Path]) -> None:
    folder = folders["passage"]
    backend = load_backend(f"sentence-transformers:{folder}")
    assert isinstance(backend, SentenceTransformersBackend)
    assert backend.dim == DIM
    assert backend.name == "tiny-st"  # the folder's name
    assert backend.spec == f"sentence-transformers:{folder}"
    assert backend.uncovered_scripts == frozenset()

    vectors = backend.embed_passages(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, direct(folder, TEXTS, "passage"), atol=1e-5)
    # the "passage: " prompt is what was prepended (not the empty "document" one v6 adds by itself)
    assert np.allclose(vectors, direct(folder, ["passage: " + t for t in TEXTS]), atol=1e-5)
    assert not np.allclose(vectors, direct(folder, TEXTS), atol=1e-3)
    # the model is no constant: different texts, different vectors
    assert float(vectors[0] @ vectors[1]) < 0.999
    # a text's vector does not depend on the batch it was padded in
    assert np.allclose(backend.embed_passages([TEXTS[1]])[0], vectors[1], atol=1e-5)


def test_queries_use_the_query_prompt(folders: dict[str, Path]) -> None:
    folder = folders["passage"]
    backend = load_backend(f"sentence-transformers:{folder}")
    queries = backend.embed_queries(TEXTS)
    assert queries.dtype == np.float32
    assert queries.shape == (len(TEXTS), DIM)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert np.allclose(queries, direct(folder, TEXTS, "query"), atol=1e-5)
    assert np.allclose(queries, direct(folder, ["query: " + t for t in TEXTS]), atol=1e-5)
    passages = backend.embed_passages(TEXTS)
    for query, passage in zip(queries, passages, strict=True):
        assert not np.allclose(query, passage, atol=1e-3)


def test_without_prompts_queries_and_passages_are_alike(folders: dict[str, Path]) -> None:
    folder = folders["none"]
    backend = load_backend(f"sentence-transformers:{folder}")
    assert backend.name == "tiny-st-plain"
    passages = backend.embed_passages(TEXTS)
    assert np.allclose(backend.embed_queries(TEXTS), passages, atol=1e-6)
    assert np.allclose(passages, direct(folder, TEXTS), atol=1e-5)
    # the same weights as the prompted model, which only its prompts set apart
    assert np.allclose(passages, direct(folders["passage"], TEXTS), atol=1e-5)


def test_a_document_prompt_serves_for_passages(folders: dict[str, Path]) -> None:
    folder = folders["document"]
    backend = load_backend(f"sentence-transformers:{folder}")
    passages = backend.embed_passages(TEXTS)
    assert np.allclose(passages, direct(folder, TEXTS, "document"), atol=1e-5)
    assert np.allclose(passages, direct(folder, ["document: " + t for t in TEXTS]), atol=1e-5)
    assert not np.allclose(passages, direct(folder, TEXTS), atol=1e-3)
    queries = backend.embed_queries(TEXTS)
    assert np.allclose(queries, direct(folder, ["query: " + t for t in TEXTS]), atol=1e-5)
    assert not np.allclose(queries, passages, atol=1e-3)


def test_empty_input_gives_no_rows(folders: dict[str, Path]) -> None:
    backend = load_backend(f"sentence-transformers:{folders['passage']}")
    for embed in (backend.embed_passages, backend.embed_queries):
        out = embed([])
        assert out.shape == (0, DIM)
        assert out.dtype == np.float32


def test_the_folder_loads_with_the_network_cut(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_HUB_OFFLINE set and every socket connection refused: the folder still loads and encodes."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted while loading a local embedding model")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    folder = folders["passage"]
    backend = load_backend(f"sentence-transformers:{folder}")
    assert backend.dim == DIM
    vectors = backend.embed_queries(["cat and dog"])
    monkeypatch.undo()
    assert attempts == []
    assert np.allclose(vectors, direct(folder, ["cat and dog"], "query"), atol=1e-5)


def test_paths_that_hold_no_model_are_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "model.safetensors"
    a_file.write_bytes(b"not a model")
    for path in (a_file, tmp_path / "missing"):
        with pytest.raises(EmbeddingError, match="is not a folder"):
            load_backend(f"sentence-transformers:{path}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmbeddingError, match="is not a sentence-transformers model"):
        load_backend(f"sentence-transformers:{empty}")
    with pytest.raises(EmbeddingError, match="unknown embedding model"):
        load_backend("sentence-transformers:")


# --- through a collection and a search -------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, folders: dict[str, Path]) -> Settings:
    """The shared workspace settings, with the tiny prompted model as the embedding model."""
    return settings.model_copy(update={"embedding_model": f"sentence-transformers:{folders['passage']}"})


def test_dense_search_through_a_collection(ws: Workspace, operator: Principal) -> None:
    spec = ws.settings.embedding_model
    assert spec.startswith("sentence-transformers:")
    info = create_collection(ws, operator, "notes")
    assert info.embedding_model == spec
    assert get_collection(ws, operator, "notes").embedding_model == spec
    docs = [
        TextDocument("pets", "The cat and the dog play with the horse.", title="At home"),
        TextDocument("money", "The bank gives a loan, and the tax takes money.", title="Bank notes"),
        TextDocument("weather", "Rain and snow come with the wind.", title="Forecast"),
    ]
    result = ingest_texts(ws, operator, "notes", docs)
    assert result.count("added") == 3
    backend = load_backend(spec)
    passages = {d.doc_id: backend.embed_passages([f"{d.title}\n{d.text}"])[0] for d in docs}
    for query in ("kitten puppy", "salary credit", "storm cloud"):
        hits = search(ws, operator, "notes", query, k=3, mode="dense").hits
        assert {h.doc_id for h in hits} == {"pets", "money", "weather"}, query
        qvec = backend.embed_queries([query])[0]
        as_passage = backend.embed_passages([query])[0]
        for hit in hits:
            # ingest embeds each chunk under its document's title
            assert hit.title and hit.title not in hit.text
            want = float(qvec @ backend.embed_passages([f"{hit.title}\n{hit.text}"])[0])
            assert hit.dense_score == pytest.approx(want, abs=1e-5)
            # the query went through the "query: " prompt, not the passage one
            assert hit.dense_score != pytest.approx(float(as_passage @ passages[hit.doc_id]), abs=1e-4)
        scores = [h.dense_score for h in hits]
        assert scores == sorted(scores, reverse=True)
        best = max(passages, key=lambda doc_id: float(qvec @ passages[doc_id]))
        assert hits[0].doc_id == best, query
