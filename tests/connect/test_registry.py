"""Connectors come from entry points: a third-party package adds one without touching Manara."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from manara.connect.protocol import Connector
from manara.connect.registry import discover, get_connector
from manara.errors import BadRequest

PLUGIN = """
from collections.abc import Iterator
import pyarrow as pa
from pydantic import Field
from manara.connect.protocol import Chunk, Connector, Options

class CounterOptions(Options):
    upto: int = Field(3, description="how many rows")

class CounterSource:
    def __init__(self, options, context):
        self.upto = options.upto

    def read(self, cursor):
        start = (cursor or {}).get("next", 0)
        for i in range(start, self.upto):
            yield Chunk(pa.record_batch({"n": [i]}), {"next": i + 1}, f"row {i}")

CONNECTOR = Connector("counter", "source", "counts", CounterOptions, CounterSource)
"""


@pytest.fixture
def plugin_on_path(tmp_path: Path) -> Iterator[Path]:
    """A real installed distribution: a module and a dist-info with entry_points.txt on sys.path."""
    (tmp_path / "acme_counter.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / "acme_broken.py").write_text("raise ImportError('acme needs libfoo')\n", encoding="utf-8")
    info = tmp_path / "acme_connectors-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-connectors\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[manara.connectors]\ncounter = acme_counter:CONNECTOR\nbroken = acme_broken:CONNECTOR\n",
        encoding="utf-8",
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for mod in ("acme_counter", "acme_broken"):
            sys.modules.pop(mod, None)


def test_builtin_connectors_are_registered_through_entry_points() -> None:
    found, _ = discover()
    assert found["files"].kind == "source"
    options = {o["name"]: o for o in found["files"].describe()["options"]}
    assert options["path"]["required"] and not options["pattern"]["required"]


def test_a_third_party_connector_is_found_and_a_broken_one_reported(plugin_on_path: Path) -> None:
    found, broken = discover()
    counter = found["counter"]
    assert isinstance(counter, Connector) and counter.summary == "counts"
    source = counter.create({"upto": 4}, context=None)  # type: ignore[arg-type]
    chunks = list(source.read({"next": 2}))  # type: ignore[union-attr]
    assert [c.batch.column(0).to_pylist() for c in chunks] == [[2], [3]]
    assert [(b.name, "libfoo" in b.error) for b in broken] == [("broken", True)]
    with pytest.raises(BadRequest, match="libfoo"):
        get_connector("broken", "source")
    with pytest.raises(BadRequest, match="option 'colour': Extra inputs are not permitted"):
        counter.create({"upto": 1, "colour": "red"}, context=None)  # type: ignore[arg-type]


def test_unknown_connectors_are_named_with_what_is_installed() -> None:
    with pytest.raises(BadRequest, match=r"no source connector named 'ftp'.*files"):
        get_connector("ftp", "source")
