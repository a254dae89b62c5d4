"""Connectors are discovered through Python entry points, the built-in ones included.

A package declares, in its `pyproject.toml`:

    [project.entry-points."manara.connectors"]
    my-source = "my_package.module:CONNECTOR"

where `CONNECTOR` is a `manara.connect.protocol.Connector`. Manara's own connectors are declared
the same way, so a third-party connector is a first-class one. A broken plug-in does not break the
others: it is reported by `manara connectors` with its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from manara.connect.protocol import Connector
from manara.errors import BadRequest

GROUP = "manara.connectors"


@dataclass(frozen=True)
class Broken:
    name: str
    target: str
    error: str


def discover() -> tuple[dict[str, Connector], list[Broken]]:
    """Every connector the installed packages declare, and the entry points that failed to load."""
    found: dict[str, Connector] = {}
    broken: list[Broken] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as err:  # a plug-in's import error must not take the hub down
            broken.append(Broken(ep.name, ep.value, f"{type(err).__name__}: {err}"))
            continue
        if not isinstance(obj, Connector):
            broken.append(Broken(ep.name, ep.value, f"is a {type(obj).__name__}, not a manara Connector"))
            continue
        if ep.name != obj.name:
            broken.append(Broken(ep.name, ep.value, f"declares the name '{obj.name}'"))
            continue
        found.setdefault(obj.name, obj)
    return found, broken


def get_connector(name: str, kind: str) -> Connector:
    found, broken = discover()
    connector = found.get(name)
    if connector is None:
        why = next((f": {b.error}" for b in broken if b.name == name), "")
        known = ", ".join(sorted(n for n, c in found.items() if c.kind == kind))
        raise BadRequest(f"no {kind} connector named '{name}'{why} (installed: {known or 'none'})")
    if connector.kind != kind:
        raise BadRequest(f"'{name}' is a {connector.kind} connector, not a {kind}")
    return connector
