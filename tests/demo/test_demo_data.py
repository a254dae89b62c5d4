"""Tests for the deterministic demo datasets (manara.demo.data)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.json as pj
import pytest

from manara.demo.data import PROVINCES, DemoDataset, write_demo_files

REAL_PROVINCES = {
    "Casablanca",
    "Mohammedia",
    "El Jadida",
    "Settat",
    "Berrechid",
    "Benslimane",
    "Sidi Bennour",
    "Médiouna",
    "Nouaceur",
}
ARABIC = re.compile("[\u0600-\u06ff]")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoDataset]:
    datasets = write_demo_files(tmp_path_factory.mktemp("demo"))
    return {d.name: d for d in datasets}


def test_datasets_metadata(demo: dict[str, DemoDataset]) -> None:
    assert set(demo) == {"citizen_requests", "machine_telemetry", "communes", "suppliers"}
    for d in demo.values():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", d.name)
        assert d.path.is_file() and d.path.stat().st_size > 0
        assert d.description and "\n" not in d.description
        assert "@" in d.owner
    assert set(PROVINCES) == REAL_PROVINCES


def test_deterministic(tmp_path: Path) -> None:
    first = write_demo_files(tmp_path / "a", seed=7)
    second = write_demo_files(tmp_path / "b", seed=7)
    assert [d.path.name for d in first] == [d.path.name for d in second]
    for a, b in zip(first, second, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes(), a.name
    other = write_demo_files(tmp_path / "c", seed=8)
    assert other[0].path.read_bytes() != first[0].path.read_bytes()


def test_citizen_requests(demo: dict[str, DemoDataset]) -> None:
    table = pv.read_csv(demo["citizen_requests"].path)
    assert 4_500 <= table.num_rows <= 5_500
    assert table.column_names == [
        "request_id",
        "submitted_at",
        "channel",
        "province",
        "service",
        "language",
        "subject",
        "status",
        "processing_days",
        "satisfaction",
    ]
    assert pa.types.is_timestamp(table.schema.field("submitted_at").type)
    assert pa.types.is_integer(table.schema.field("processing_days").type)
    rows = table.to_pylist()

    ids = [r["request_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"CS-2025-\d{6}", i) for i in ids)
    assert all(r["submitted_at"].year == 2025 for r in rows)
    assert {r["province"] for r in rows} == REAL_PROVINCES
    channels = {"guichet", "portail web", "téléphone", "WhatsApp", "bureau d'ordre"}
    assert {r["channel"] for r in rows} == channels
    assert {r["language"] for r in rows} == {"ar", "fr", "ary"}
    assert {r["status"] for r in rows} == {"reçue", "en cours", "traitée", "rejetée"}

    for r in rows:
        finished = r["status"] in ("traitée", "rejetée")
        assert (r["processing_days"] is not None) == finished
        if r["satisfaction"] is not None:
            assert finished and 1 <= r["satisfaction"] <= 5
        if r["language"] == "fr":
            assert not ARABIC.search(r["subject"])
        else:
            assert ARABIC.search(r["subject"])

    subjects = {r["subject"] for r in rows}
    assert len(subjects) > 300  # templated, not a handful of strings
    assert any(ch in "".join(subjects) for ch in "éèàç")


def test_machine_telemetry(demo: dict[str, DemoDataset]) -> None:
    path = demo["machine_telemetry"].path
    assert path.read_text(encoding="utf-8").splitlines()[0].count(";") == 7
    table = pv.read_csv(path, parse_options=pv.ParseOptions(delimiter=";"))
    assert 18_000 <= table.num_rows <= 25_000
    for col in ("temperature_c", "vibration_mm_s", "power_kw"):
        assert pa.types.is_floating(table.schema.field(col).type), col
    assert pa.types.is_integer(table.schema.field("units_produced").type)
    assert pa.types.is_timestamp(table.schema.field("ts").type)

    rows = table.to_pylist()
    machines = {r["machine_id"] for r in rows}
    assert machines == {f"TX-LOOM-{i:02d}" for i in range(1, 7)} | {f"AP-PRESS-{i:02d}" for i in range(1, 4)}
    assert {r["status"] for r in rows} == {"RUN", "IDLE", "ALARM", "MAINT"}
    assert len({r["ts"].date() for r in rows}) >= 3

    run_median = statistics.median(r["temperature_c"] for r in rows if r["status"] == "RUN")
    alarm_temps = [r["temperature_c"] for r in rows if r["status"] == "ALARM"]
    assert alarm_temps
    assert sum(t > run_median for t in alarm_temps) >= 10
    assert max(alarm_temps) > run_median + 10


def test_communes(demo: dict[str, DemoDataset]) -> None:
    table = pj.read_json(demo["communes"].path)
    assert 30 <= table.num_rows <= 60
    for col in ("name_fr", "name_ar", "province", "population", "area_km2"):
        assert col in table.column_names
    for field in table.schema:  # flat: no struct / list columns
        assert not pa.types.is_nested(field.type), field
    assert pa.types.is_integer(table.schema.field("population").type)
    assert pa.types.is_floating(table.schema.field("area_km2").type)
    rows = table.to_pylist()
    assert {r["province"] for r in rows} == REAL_PROVINCES
    assert all(ARABIC.search(r["name_ar"]) for r in rows)
    assert {"الدار البيضاء", "المحمدية", "الجديدة", "سطات", "برشيد"} <= {r["name_ar"] for r in rows}
    assert all(r["population"] > 0 and r["area_km2"] > 0 for r in rows)


def test_suppliers_cp1256(demo: dict[str, DemoDataset]) -> None:
    raw = demo["suppliers"].path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1256")
    assert ARABIC.search(text)

    table = pv.read_csv(
        demo["suppliers"].path,
        read_options=pv.ReadOptions(encoding="cp1256"),
        convert_options=pv.ConvertOptions(column_types={"ice": pa.string()}),
    )
    assert 150 <= table.num_rows <= 250
    assert table.column_names == [
        "ice",
        "raison_sociale",
        "ville_ar",
        "secteur",
        "date_creation",
        "capital_mad",
    ]
    assert pa.types.is_date(table.schema.field("date_creation").type)
    assert pa.types.is_integer(table.schema.field("capital_mad").type)
    rows = table.to_pylist()
    ices = [r["ice"] for r in rows]
    assert len(set(ices)) == len(ices)
    for ice in ices:
        assert re.fullmatch(r"\d{15}", ice), ice
        assert int(ice) % 97 == 0, ice
    assert all(ARABIC.search(r["ville_ar"]) for r in rows)
    names = [r["raison_sociale"] for r in rows]
    assert any(ARABIC.search(n) for n in names) and any(not ARABIC.search(n) for n in names)
