"""``salesops forecast backtest`` end to end on the shipped Maven sample (months only, to
stay quick; weeks are replayed in tests/forecast/unit/test_backtest.py)."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from salesops_cli.main import main
from salesops_cli.maven import DATA_DIR
from salesops_forecast.backtest.deals import read_maven
from salesops_forecast.backtest.scores import holdout
from salesops_forecast.backtest.win_odds import ServiceWinOdds
from salesops_forecast.domain.win_probability import WIN_MODEL

pytestmark = pytest.mark.unit


def monthly_bookings() -> dict[str, float]:
    """Won close value by close month, read from the CSV on its own."""
    booked: dict[str, float] = defaultdict(float)
    with open(DATA_DIR / "sales_pipeline.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["deal_stage"] == "Won":
                booked[row["close_date"][:7]] += float(row["close_value"])
    return booked


def test_backtest_writes_a_report_and_chart_of_the_maven_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "backtest"
    code = main(["forecast", "backtest", "--out", str(out), "--period", "month"])

    assert code == 0
    printed = capsys.readouterr().out
    assert re.search(r"company monthly WAPE: blend \d+\.\d%, best baseline \w+", printed)
    report = (out / "report.md").read_text()
    assert "## Monthly origins (7 origins, 2017-06-01 to 2017-12-01)" in report
    assert "## Weekly origins" not in report

    # The company's actuals are the sample's own monthly bookings.
    booked = monthly_bookings()
    rows = re.findall(r"^\| (2017-\d\d)-01 \| ([\d,]+) \|", report, flags=re.M)
    assert [m for m, _ in rows] == [f"2017-{m:02d}" for m in range(6, 13)]
    for month, actual in rows:
        assert int(actual.replace(",", "")) == round(booked[month])

    # Every method and baseline is scored at every scope kind; the target is stated.
    for method in ("blend", "pipeline", "auto_ets", "theta", "naive", "mean_3"):
        assert re.search(rf"^\| \**{method}\** \| \d+\.\d %", report, flags=re.M), method
    assert re.search(r"Reduction -?\d+\.\d % against the 30% asked: \*\*(met|missed)\*\*", report)
    # The holdout is scored by the forecast service's own deal model (its win model, not
    # the stage-history fallback), on the default cutoff.
    expected = holdout(
        read_maven(DATA_DIR), cutoff=np.datetime64("2017-09-01", "D"), win_odds=ServiceWinOdds()
    )
    assert f"`{WIN_MODEL}`" in expected.model
    assert f"Deal model: {expected.model}." in report
    a, o = expected.held, expected.open_then
    assert f"| AUC | {a.auc:.3f} | {o.auc:.3f} |" in report
    assert f"| Brier score | {a.brier:.4f} | {o.brier:.4f} |" in report
    assert 0.4 < a.auc < 1

    image = matplotlib.image.imread(out / "forecast-vs-actual.png")
    assert image.shape[0] > 200
    assert image.shape[1] > 400
