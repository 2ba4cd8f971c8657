"""Reading the provisioned Grafana dashboards as Grafana would: every panel (rows and their
nested panels included), every query, the template variables and their substitution."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}

# Grafana's own interval variables, replaced by fixed durations when a query is run outside
# Grafana. Long enough that a counter moved at any time during a test is still in range.
BUILTIN_DURATIONS = {"__rate_interval": "10m", "__interval": "1m", "__range": "1h"}

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+)\s*,\s*(?P<label>\w+)\s*\)\s*$")


def dashboard_paths() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, the panels of collapsed rows included."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard}: {self.panel} [{self.ref_id}]"


def queries(dashboard: dict[str, Any], name: str) -> list[Query]:
    out = []
    for panel in walk_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            out.append(Query(name, str(panel.get("title")), str(target["refId"]), target["expr"]))
    return out


@dataclass(frozen=True)
class Variable:
    name: str
    query: str
    include_all: bool
    all_value: str | None
    multi: bool

    def label_values(self) -> tuple[str, str]:
        """(series selector, label) of a ``label_values(selector, label)`` query."""
        found = _LABEL_VALUES.match(self.query)
        assert found, f"${self.name}: not a label_values(selector, label) query: {self.query}"
        return found["selector"].strip(), found["label"]


def variables(dashboard: dict[str, Any]) -> list[Variable]:
    out = []
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        out.append(
            Variable(
                name=var["name"],
                query=str(query or var.get("definition", "")),
                include_all=bool(var.get("includeAll")),
                all_value=var.get("allValue"),
                multi=bool(var.get("multi")),
            )
        )
    return out


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` / ``${name:fmt}``: Grafana's interval variables by
    :data:`BUILTIN_DURATIONS`, the dashboard's own by ``values``. An unknown one raises."""

    def repl(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name in values:
            return values[name]
        if name in BUILTIN_DURATIONS:
            return BUILTIN_DURATIONS[name]
        raise KeyError(f"unknown variable ${name} in {expr!r}")

    return _VARIABLE.sub(repl, expr)


def as_shown(dashboard: dict[str, Any], expr: str) -> str:
    """The query as Grafana runs it when the dashboard opens: every variable on its default,
    which for the dashboards here is "All" (the variable's ``allValue``)."""
    values = {}
    for var in variables(dashboard):
        assert var.include_all, f"${var.name} has no All option"
        assert var.all_value, f"${var.name} has no All value"
        values[var.name] = var.all_value
    return substitute(expr, values)
