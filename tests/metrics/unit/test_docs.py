"""docs/metrics.md states every KPI's definition exactly as the service lists it."""

from __future__ import annotations

from pathlib import Path

import pytest

from salesops_metrics.adapters.prometheus import metric_name
from salesops_metrics.domain.kpis import KPIS

pytestmark = pytest.mark.unit
GUIDE = Path(__file__).parents[3] / "docs" / "metrics.md"


def test_the_guide_has_every_kpi_with_its_exact_definition() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for kpi in KPIS.values():
        assert f"### `{kpi.name}` ({kpi.unit})" in text, kpi.name
        assert kpi.definition in text, kpi.name
        if not kpi.counter:
            assert f"`{metric_name(kpi)}`" in text, kpi.name
