"""The backtest's Markdown report and its chart of forecast against actual (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from salesops_forecast.backtest.replay import (  # noqa: E402
    BLEND,
    BLENDED,
    Replay,
    methods,
)
from salesops_forecast.backtest.scores import (  # noqa: E402
    SCOPE_KINDS,
    TARGET_BASELINES,
    TARGET_REDUCTION,
    Holdout,
    Score,
    target,
)
from salesops_forecast.domain.method import PIPELINE  # noqa: E402

CHART = "forecast-vs-actual.png"
REPORT = "report.md"
DESCRIPTIONS = {
    BLEND: (
        "blend of pipeline, auto_ets, theta, seasonal_run_rate and seasonal_naive (weights ∝"
        " 1/WAPE^power over the last six earlier origins only, 0 for a method beyond a cut-off"
        " times the best one's WAPE; power and cut-off chosen at each origin by a nested"
        " rolling origin over those origins, 1/WAPE² untrimmed until two blends are scored;"
        " the pipeline alone before two origins are scored)"
    ),
    PIPELINE: (
        "won so far + open deals × P(win) × P(close in period) × the quarter's rhythm ×"
        " amount (the list price: the sample's only amount for an open deal), plus not yet"
        " created; the rhythm: the share of deals open at the start of past periods at the"
        " same place in the quarter (first, second or third month) won within them, against"
        " over all past periods, and not yet created as those periods had it"
    ),
    "auto_ets": "AutoETS on the scope's bookings per period",
    "theta": "standard Theta on the scope's bookings per period",
    "seasonal_run_rate": (
        "last quarter's run-rate × month-in-quarter (week-in-quarter) index from a classical"
        " multiplicative decomposition, shrunk toward 1 when few quarters exist"
    ),
    "naive": "baseline: same as last period",
    "mean_3": "baseline: mean of the last three periods",
    "seasonal_naive": (
        "baseline, and a member of the blend: same period one season ago (a quarter: 3"
        " months, 13 weeks)"
    ),
    "stage_weighted": "baseline: open deals × fixed stage probability (Engaging 0.4)",
}


@dataclass(frozen=True)
class Backtested:
    replay: Replay
    scores: dict[str, dict[str, Score]]


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f} %"


def _num(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def score_table(b: Backtested) -> list[str]:
    header = "| method | " + " | ".join(f"{k} WAPE | {k} MASE" for k in SCOPE_KINDS) + " |"
    lines = [header, "|---|" + "---:|" * (2 * len(SCOPE_KINDS))]
    for method in methods(b.replay):
        cells = [
            f"{_pct(b.scores[method][k].wape)} | {_num(b.scores[method][k].mase)}"
            for k in SCOPE_KINDS
        ]
        name = f"**{method}**" if method == BLEND else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _origins(r: Replay) -> str:
    first, last = r.periods[r.origins[0]][0], r.periods[r.origins[-1]][0]
    return f"{len(r.origins)} origins, {first} to {last}"


def company_table(r: Replay) -> list[str]:
    shown = [m for m in methods(r) if m != "stage_weighted"]
    lines = [
        "| period | actual | " + " | ".join(shown) + " |",
        "|---|" + "---:|" * (len(shown) + 1),
    ]
    actual = r.actuals()[:, 0]
    for i, k in enumerate(r.origins):
        cells = [f"{r.method_forecasts(m)[i, 0]:,.0f}" for m in shown]
        lines.append(
            f"| {r.periods[k][0]:%Y-%m-%d} | {actual[i]:,.0f} | " + " | ".join(cells) + " |"
        )
    return lines


def weights_table(r: Replay) -> list[str]:
    lines = [
        "| origin | rule | " + " | ".join(BLENDED) + " |",
        "|---|---|" + "---:|" * len(BLENDED),
    ]
    for k, w, rule in zip(r.origins, r.company_weights, r.rules, strict=True):
        cells = [rule.describe(), *(f"{w.get(m, 0):.2f}" for m in BLENDED)]
        lines.append(f"| {r.periods[k][0]} | " + " | ".join(cells) + " |")
    return lines


def holdout_lines(h: Holdout) -> list[str]:
    a, o = h.held, h.open_then
    lines = [
        f"Deal model: {h.model}. Fitted on the {h.trained_on:,} deals closed before "
        f"{h.cutoff}, scored on the {a.scored:,} closed on or after it (as of the cutoff, or "
        f"as of its engagement for a deal engaged later); {o.scored:,} of them were open at "
        "the cutoff.",
        "",
        "| measure | all scored | open at the cutoff |",
        "|---|---:|---:|",
        f"| AUC | {a.auc:.3f} | {o.auc:.3f} |",
        f"| Brier score | {a.brier:.4f} | {o.brier:.4f} |",
        "| Brier score of the training win rate for every deal | "
        f"{a.base_rate_brier:.4f} | {o.base_rate_brier:.4f} |",
        "",
        "| predicted | deals | mean predicted | won |",
        "|---|---:|---:|---:|",
    ]
    for b in h.calibration:
        lines.append(
            f"| {b.low:.1f}–{b.high:.1f} | {b.deals:,} | {b.mean_probability:.3f} | "
            f"{b.win_rate:.3f} |"
        )
    return lines


def target_lines(monthly: Backtested) -> list[str]:
    t = target(monthly.scores)
    verdict = "**met**" if t.met else "**missed**"
    return [
        f"Blend, company, monthly WAPE **{_pct(t.blend)}**; best of the baselines "
        f"{', '.join(TARGET_BASELINES)}: `{t.baseline}` {_pct(t.baseline_wape)}. Reduction "
        f"{_pct(t.reduction)} against the {TARGET_REDUCTION:.0%} asked: {verdict}.",
    ]


def render(*, runs: Sequence[Backtested], holdout: Holdout, command: str, deals: int) -> str:
    monthly = next((b for b in runs if b.replay.kind == "month"), None)
    lines = [
        "# Forecast backtest: the Maven CRM sample",
        "",
        f"Made by `{command}` from {deals:,} deals. Rolling origin: as of the first day of "
        "each period, every method forecasts that period's bookings (won amount by close "
        "day) from what was known then, for the company, each regional office (team) and "
        "each agent (rep). An origin is scored once three periods of bookings precede it. "
        "The methods and the blend are the forecast service's own (domain/method.py): the "
        "code a forecast run publishes with, tested to publish what this replay forecasts "
        "at the same origin (tests/forecast/integration/test_backtest_parity.py).",
        "",
    ]
    if monthly is not None:
        lines += ["## Target", "", *target_lines(monthly), ""]
    for b in runs:
        lines += [f"## {b.replay.kind.capitalize()}ly origins ({_origins(b.replay)})", ""]
        lines += [*score_table(b), ""]
        lines += ["Company, forecast against actual:", "", *company_table(b.replay), ""]
        lines += [
            "Blend weights (from the company's backtest, for every scope) and the rule chosen"
            " out of sample, by origin:",
            "",
            *weights_table(b.replay),
            "",
        ]
    lines += ["## Deal win probabilities, time-based holdout", "", *holdout_lines(holdout), ""]
    lines += ["## Methods", ""]
    lines += [f"- `{m}`: {d}" for m, d in DESCRIPTIONS.items()]
    lines += ["", f"Chart: [{CHART}]({CHART}).", ""]
    return "\n".join(lines)


def chart(runs: Sequence[Backtested], path: Path) -> None:
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 4 * len(runs)), squeeze=False)
    for ax, b in zip(axes[:, 0], runs, strict=True):
        r = b.replay
        when = [r.periods[k][0] for k in r.origins]
        ax.plot(when, r.actuals()[:, 0], "k-o", label="actual", linewidth=2)
        for m in dict.fromkeys((BLEND, *BLENDED, "mean_3")):
            if m in methods(r):
                style = "-s" if m == BLEND else "--"
                ax.plot(when, r.method_forecasts(m)[:, 0], style, label=m, alpha=0.85)
        ax.set_title(f"Company bookings per {r.kind}: forecast as of the period's start")
        ax.set_ylabel("USD")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
