"""The `onnx:DIR` embedding backend, end to end on real onnxruntime and tokenizers (no mocks).

Each test builds a tiny model folder: a word-level `tokenizer.json` and an ONNX graph whose
`last_hidden_state` is a lookup in a fixed embedding table. The expected vectors are computed here
with numpy from that table, so the backend's tokenisation, padding, pooling, prefixes, truncation
and normalisation are all checked against numbers, then through a real collection and search.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from manara.config import Settings
from manara.govern.principal import Principal
from manara.models.embeddings import EmbeddingError, OnnxBackend, load_backend
from manara.search.collections import create_collection, get_collection
from manara.search.ingest import TextDocument, ingest_texts
from manara.search.retrieve import search
from manara.workspace import Workspace

onnx = pytest.importorskip("onnx")  # only to build the test graphs
pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")
TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper

DIM = 8
SPECIALS = ["[PAD]", "[UNK]", "[CLS]"]
TOPICS = {  # words of a topic share a direction of the table
    0: ["cat", "dog", "horse", "bird", "kitten", "puppy", "cow"],
    1: ["bank", "money", "loan", "tax", "credit", "salary", "budget"],
    2: ["rain", "snow", "wind", "storm", "cloud", "sunny", "weather"],
}
OTHERS = ["the", "a", "and", "with", "of", "query", "passage"]
WORDS = [w for words in TOPICS.values() for w in words] + OTHERS
VOCAB = {w: i for i, w in enumerate(SPECIALS + WORDS)}


def _table() -> np.ndarray:
    rng = np.random.default_rng(20240601)
    table = rng.normal(scale=0.3, size=(len(VOCAB), DIM)).astype(np.float32)
    for topic, words in TOPICS.items():
        for w in words:
            table[VOCAB[w], topic] += 3.0
    # padding gets a loud vector of its own: a backend that pooled over padding would show it
    table[VOCAB["[PAD]"]] = 0.0
    table[VOCAB["[PAD]"], 5] = 25.0
    table[VOCAB["query"], 6] += 4.0
    table[VOCAB["passage"], 7] += 4.0
    return table


TABLE = _table()
TYPE_TABLE = np.stack([np.linspace(-1.0, 1.0, DIM), np.full(DIM, 9.0)]).astype(np.float32)


def ids(text: str) -> list[int]:
    """What the word-level tokenizer should give: lower-cased words and punctuation runs, else [UNK]."""
    return [VOCAB.get(t, VOCAB["[UNK]"]) for t in re.findall(r"\w+|[^\w\s]+", text.lower())]


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def expected_mean(text: str, table: np.ndarray = TABLE) -> np.ndarray:
    return unit(table[ids(text)].mean(axis=0))


# --- building model folders ------------------------------------------------------------------------


def save_tokenizer(path: Path, *, cls_template: bool = False) -> None:
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=VOCAB, unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIALS)
    if cls_template:  # BERT-style: every text starts with [CLS]
        tok.post_processor = tokenizers.processors.TemplateProcessing(
            single="[CLS] $A", special_tokens=[("[CLS]", VOCAB["[CLS]"])]
        )
    tok.save(str(path / "tokenizer.json"))


def save_graph(path: Path, *, pooled: bool = False, token_types: bool = False) -> None:
    """input_ids, attention_mask [, token_type_ids] -> Gather(table, input_ids) [+ type rows] [, mean]."""
    int_input = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
        for name in ("input_ids", "attention_mask") + (("token_type_ids",) if token_types else ())
    ]
    inits = [numpy_helper.from_array(TABLE, "table")]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["tokens"], axis=0)]
    hidden = "tokens"
    if token_types:  # BERT-style: a row per segment type added to every token
        inits.append(numpy_helper.from_array(TYPE_TABLE, "type_table"))
        nodes.append(helper.make_node("Gather", ["type_table", "token_type_ids"], ["types"], axis=0))
        nodes.append(helper.make_node("Add", ["tokens", "types"], ["hidden"]))
        hidden = "hidden"
    if pooled:  # the graph pools itself (over every position, padding included)
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "seq_axis"))
        nodes.append(helper.make_node("ReduceMean", [hidden, "seq_axis"], ["sentence_embedding"], keepdims=0))
        out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", DIM])
    else:
        nodes.append(helper.make_node("Identity", [hidden], ["last_hidden_state"]))
        out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", DIM])
    # a second output echoing the mask: the backend must read the first one
    nodes.append(helper.make_node("Identity", ["attention_mask"], ["mask_echo"]))
    echo = helper.make_tensor_value_info("mask_echo", TensorProto.INT64, ["batch", "seq"])
    graph = helper.make_graph(nodes, "tiny-encoder", int_input, [out, echo], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path / "model.onnx"))


def model_folder(
    root: Path,
    name: str = "tiny-encoder",
    options: dict | None = None,
    cls_template: bool = False,
    **graph: bool,
) -> Path:
    folder = root / name
    folder.mkdir()
    save_tokenizer(folder, cls_template=cls_template)
    save_graph(folder, **graph)
    if options is not None:
        (folder / "manara.json").write_text(json.dumps(options), encoding="utf-8")
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return model_folder(tmp_path)


# --- the backend on its own ------------------------------------------------------------------------


def test_mean_pooled_vectors_match_the_table(model_dir: Path) -> None:
    backend = load_backend(f"onnx:{model_dir}")
    assert isinstance(backend, OnnxBackend)
    assert backend.dim == DIM
    assert backend.name == "tiny-encoder"  # no manara.json: the folder's name
    assert backend.spec == f"onnx:{model_dir}"
    assert backend.uncovered_scripts == frozenset()

    texts = ["The cat and the dog", "bank LOAN tax", "a storm, with snow!", "zebra"]
    vectors = backend.embed_passages(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, expected_mean(text), atol=1e-6), text
    # no prefixes configured: queries and passages are encoded alike
    assert np.allclose(backend.embed_queries(texts), vectors, atol=1e-6)


def test_padding_in_a_batch_is_left_out_of_the_mean(model_dir: Path) -> None:
    backend = load_backend(f"onnx:{model_dir}")
    together = backend.embed_passages(["cat dog horse bank money", "cat"])
    alone = backend.embed_passages(["cat"])
    assert np.allclose(together[1], alone[0], atol=1e-6)
    assert np.allclose(together[1], unit(TABLE[VOCAB["cat"]]), atol=1e-6)
    assert np.allclose(together[0], expected_mean("cat dog horse bank money"), atol=1e-6)
    # the [PAD] row points along axis 5: had it been pooled, it would dominate "cat"
    assert abs(together[1][5]) < 0.5


def test_empty_input_gives_no_rows(model_dir: Path) -> None:
    backend = load_backend(f"onnx:{model_dir}")
    for embed in (backend.embed_passages, backend.embed_queries):
        out = embed([])
        assert out.shape == (0, DIM)
        assert out.dtype == np.float32


def test_cls_pooling_takes_the_first_token(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, options={"pooling": "cls"})
    backend = load_backend(f"onnx:{folder}")
    vectors = backend.embed_passages(["dog bank rain", "rain dog", "money"])
    assert np.allclose(vectors[0], unit(TABLE[VOCAB["dog"]]), atol=1e-6)
    assert np.allclose(vectors[1], unit(TABLE[VOCAB["rain"]]), atol=1e-6)
    assert np.allclose(vectors[2], unit(TABLE[VOCAB["money"]]), atol=1e-6)
    assert not np.allclose(vectors[0], expected_mean("dog bank rain"), atol=1e-3)


def test_a_bert_style_cls_token_is_pooled_and_counted(tmp_path: Path) -> None:
    cls_row = TABLE[VOCAB["[CLS]"]]
    mean = load_backend(f"onnx:{model_folder(tmp_path, 'mean', cls_template=True)}")
    assert np.allclose(
        mean.embed_passages(["cat dog"])[0],
        unit(np.vstack([cls_row, TABLE[ids("cat dog")]]).mean(axis=0)),
        atol=1e-6,
    )
    cls = load_backend(f"onnx:{model_folder(tmp_path, 'cls', {'pooling': 'cls'}, cls_template=True)}")
    # this graph has no attention: the [CLS] position holds the [CLS] row whatever follows it
    assert np.allclose(cls.embed_passages(["cat dog", "bank"]), unit(cls_row), atol=1e-6)
    # max_length counts the [CLS] token: 3 keeps [CLS] and two words
    short = load_backend(f"onnx:{model_folder(tmp_path, 'short', {'max_length': 3}, cls_template=True)}")
    assert np.allclose(
        short.embed_passages(["rain snow wind storm"])[0],
        unit(np.vstack([cls_row, TABLE[ids("rain snow")]]).mean(axis=0)),
        atol=1e-6,
    )


def test_prefixes_and_name_come_from_manara_json(tmp_path: Path) -> None:
    options = {"name": "tiny-e5", "query_prefix": "query: ", "passage_prefix": "passage: "}
    folder = model_folder(tmp_path, options=options)
    backend = load_backend(f"onnx:{folder}")
    assert backend.name == "tiny-e5"
    assert backend.spec == f"onnx:{folder}"
    text = "cat and dog"
    query, passage = backend.embed_queries([text])[0], backend.embed_passages([text])[0]
    # the ":" of the prefix is a word the vocabulary lacks: [UNK] is pooled too
    assert ids("query: cat and dog")[:2] == [VOCAB["query"], VOCAB["[UNK]"]]
    assert np.allclose(query, expected_mean("query: " + text), atol=1e-6)
    assert np.allclose(passage, expected_mean("passage: " + text), atol=1e-6)
    assert not np.allclose(query, passage, atol=1e-2)
    # the prefix words' own directions (axis 6 for "query", 7 for "passage") show where they went
    assert query[6] > passage[6] + 0.2
    assert passage[7] > query[7] + 0.2
    unprefixed = expected_mean(text)
    assert not np.allclose(query, unprefixed, atol=1e-2)


def test_max_length_truncates(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, options={"max_length": 3})
    backend = load_backend(f"onnx:{folder}")
    long = "cat dog horse bank money tax rain snow wind storm"
    vectors = backend.embed_passages([long, "cat dog horse"])
    assert np.allclose(vectors[0], expected_mean("cat dog horse"), atol=1e-6)
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)
    assert not np.allclose(vectors[0], expected_mean(long), atol=1e-2)


def test_default_max_length_keeps_long_texts_whole(model_dir: Path) -> None:
    backend = load_backend(f"onnx:{model_dir}")
    long = " ".join(["cat"] * 300 + ["bank"] * 100)
    assert np.allclose(backend.embed_passages([long])[0], expected_mean(long), atol=1e-5)


def test_a_graph_that_pools_itself_is_used_as_is(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, pooled=True, options={"pooling": "cls"})
    backend = load_backend(f"onnx:{folder}")
    assert backend.dim == DIM
    vectors = backend.embed_passages(["cat dog", "bank money tax"])
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.allclose(vectors[0], unit(TABLE[ids("cat dog") + [VOCAB["[PAD]"]]].mean(axis=0)), atol=1e-6)
    assert np.allclose(vectors[1], expected_mean("bank money tax"), atol=1e-6)
    # neither re-pooled nor CLS-picked: the graph's own mean (its padding included) is what comes out
    assert not np.allclose(vectors[0], unit(TABLE[VOCAB["cat"]]), atol=1e-2)


def test_token_type_ids_are_fed_as_zeros(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, token_types=True)
    backend = load_backend(f"onnx:{folder}")
    vectors = backend.embed_passages(["cat dog horse", "bank"])
    with_type0 = TABLE + TYPE_TABLE[0]
    assert np.allclose(vectors[0], expected_mean("cat dog horse", with_type0), atol=1e-6)
    assert np.allclose(vectors[1], expected_mean("bank", with_type0), atol=1e-6)
    # segment 1's loud row would have swamped the words
    assert not np.allclose(vectors[0], expected_mean("cat dog horse", TABLE + TYPE_TABLE[1]), atol=1e-2)


# --- refusals --------------------------------------------------------------------------------------


def test_a_folder_without_its_tokenizer_or_model_is_refused(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(EmbeddingError, match=r"must hold model\.onnx and tokenizer\.json"):
        load_backend(f"onnx:{folder}")
    save_tokenizer(folder)
    (folder / "model.onnx").unlink()
    with pytest.raises(EmbeddingError, match=r"must hold model\.onnx and tokenizer\.json"):
        load_backend(f"onnx:{folder}")


def test_missing_onnxruntime_is_named(tmp_path: Path) -> None:
    """Where onnxruntime is not installed (here: its import blocked), the error says what to install."""
    folder = model_folder(tmp_path)
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from manara.models.embeddings import EmbeddingError, load_backend\n"
        "try:\n"
        f"    load_backend({f'onnx:{folder}'!r})\n"
        "except EmbeddingError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "needs onnxruntime and tokenizers" in out.stdout
    assert "pip install onnxruntime tokenizers" in out.stdout


# --- through a collection and a search -------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The shared workspace settings, with the tiny ONNX encoder as the embedding model."""
    folder = model_folder(tmp_path, options={"name": "tiny-encoder"})
    return settings.model_copy(update={"embedding_model": f"onnx:{folder}"})


def test_dense_search_through_a_collection(ws: Workspace, operator: Principal) -> None:
    spec = ws.settings.embedding_model
    assert spec.startswith("onnx:")
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
    # queries that share no word with any document: only the vectors can rank them
    for query, expected in (("kitten puppy", "pets"), ("salary credit", "money"), ("storm cloud", "weather")):
        hits = search(ws, operator, "notes", query, k=3, mode="dense").hits
        assert [h.doc_id for h in hits][0] == expected, query
        assert {h.doc_id for h in hits} == {"pets", "money", "weather"}
        qvec = backend.embed_queries([query])[0]
        for hit in hits:
            # ingest embeds each chunk under its document's title
            assert hit.title and hit.title not in hit.text
            want = float(qvec @ backend.embed_passages([f"{hit.title}\n{hit.text}"])[0])
            assert hit.dense_score == pytest.approx(want, abs=1e-5)
        assert hits[0].dense_score > 0.8 > hits[1].dense_score
