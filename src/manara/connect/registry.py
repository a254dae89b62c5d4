"""Connectors are discovered through Python entry points, the built-in ones included.

A package declares, in its `pyproject.toml`:

    [project.entry-points."manara.connectors"]
    my-source = "my_package.module:CONNECTOR"

where `CONNECTOR` is a `manara.connect.protocol.Connector`; a sink is declared in the
`manara.sinks` group the same way (a source and a sink may share a name, e.g. `mqtt`). Manara's own connectors are declared
the same way, so a third-party connector is a first-class one. A broken plug-in does not break the
others: it is reported by `manara connectors` with its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from manara.connect.protocol import Connector
from manara.errors import BadRequest

GROUP = "manara.connectors"
SINK_GROUP = "manara.sinks"
GROUPS = {GROUP: "source", SINK_GROUP: "sink"}


@dataclass(frozen=True)
class Broken:
    name: str
    target: str
    error: str
    kind: str = "source"


def discover(kind: str | None = None) -> tuple[dict[str, Connector], list[Broken]]:
    """Every connector the installed packages declare (of one kind, or all: then a sink that shares a
    source's name is keyed `<name> (sink)`), and the entry points that failed to load."""
    found: dict[str, Connector] = {}
    broken: list[Broken] = []
    for group, group_kind in GROUPS.items():
        if kind is None or kind == group_kind:
            _discover_group(group, group_kind, found, broken, suffix=kind is None)
    return found, broken


def _discover_group(
    group: str, kind: str, found: dict[str, Connector], broken: list[Broken], *, suffix: bool
) -> None:
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as err:  # a plug-in's import error must not take the hub down
            broken.append(Broken(ep.name, ep.value, f"{type(err).__name__}: {err}", kind))
            continue
        if not isinstance(obj, Connector):
            broken.append(
                Broken(ep.name, ep.value, f"is a {type(obj).__name__}, not a manara Connector", kind)
            )
            continue
        if ep.name != obj.name:
            broken.append(Broken(ep.name, ep.value, f"declares the name '{obj.name}'", kind))
            continue
        if obj.kind != kind:
            broken.append(Broken(ep.name, ep.value, f"is a {obj.kind} declared in the {group} group", kind))
            continue
        key = f"{obj.name} (sink)" if suffix and kind == "sink" and obj.name in found else obj.name
        found.setdefault(key, obj)


def get_connector(name: str, kind: str) -> Connector:
    found, broken = discover(kind)
    connector = found.get(name)
    if connector is None:
        why = next((f": {b.error}" for b in broken if b.name == name), "")
        known = ", ".join(sorted(found))
        raise BadRequest(f"no {kind} connector named '{name}'{why} (installed: {known or 'none'})")
    return connector
