"""One backtest run: read the deals, replay them by month and by week, score the deal
probabilities on a holdout, write the report and the chart."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salesops_forecast.backtest.deals import read_maven
from salesops_forecast.backtest.replay import replay
from salesops_forecast.backtest.report import CHART, REPORT, Backtested, chart, render
from salesops_forecast.backtest.scores import Target, holdout, scores, target
from salesops_forecast.backtest.win_odds import ServiceWinOdds, WinOdds
from salesops_forecast.domain.pipeline_model import PeriodKind


@dataclass(frozen=True)
class BacktestResult:
    report: Path
    chart: Path
    target: Target | None


def run_backtest(
    *,
    data_dir: Path,
    out_dir: Path,
    kinds: Sequence[PeriodKind],
    holdout_from: str,
    command: str,
    win_odds: WinOdds | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> BacktestResult:
    odds = win_odds or ServiceWinOdds()
    deals = read_maven(data_dir)
    runs = []
    for kind in kinds:
        replayed = replay(deals, kind=kind, win_odds=odds, progress=progress)
        runs.append(Backtested(replayed, scores(replayed)))
    held = holdout(deals, cutoff=np.datetime64(holdout_from, "D"), win_odds=odds)
    out_dir.mkdir(parents=True, exist_ok=True)
    report, picture = out_dir / REPORT, out_dir / CHART
    report.write_text(render(runs=runs, holdout=held, command=command, deals=len(deals)))
    chart(runs, picture)
    monthly = next((b for b in runs if b.replay.kind == "month"), None)
    return BacktestResult(report, picture, target(monthly.scores) if monthly else None)
