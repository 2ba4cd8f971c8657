"""Scoring open deals (issue 6): 100,000 open deals scored by a trained deal model —
P(win), P(close in month and quarter) and three reasons each — next to the stage-table
lookup the forecast used before (P(win | stage) per deal) for the same deals, in this
process. Training is timed apart.

``python -m bench.forecast_scoring [--open N] [--closed N]`` prints the Markdown table.
Generated deals use every feature: stage history, product, account industry, size,
revenue and country, owner and manager, team, territory, activity; the outcome depends on
several of them, so the model has something to find.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.report import table, verdict
from salesops_forecast.domain.facts import DealFacts
from salesops_forecast.domain.periods import current_periods
from salesops_forecast.domain.win_probability import fit_deal_model, score_deals

AS_OF = datetime(2026, 11, 16, 12, tzinfo=UTC)
STAGES = ("Discovery", "Qualification", "Proposal", "Negotiation")
TARGET_SECONDS = 5.0
REPEATS = 3


def _deal(
    rng: random.Random, owners: list[tuple[uuid.UUID, uuid.UUID, str]], closed: bool
) -> DealFacts:
    owner, manager, team = rng.choice(owners)
    product = rng.randrange(20)
    industry = rng.randrange(25)
    reached = rng.randrange(len(STAGES))
    skill = (owner.int % 7) / 20
    chance = min(0.9, 0.1 + 0.15 * reached + product / 60 + skill)
    created = AS_OF - timedelta(days=rng.uniform(60, 500) if closed else rng.uniform(0, 120))
    times = [
        created + timedelta(days=8 * i + rng.uniform(0, 5) * (i > 0)) for i in range(reached + 1)
    ]
    stages = tuple((STAGES[i], t) for i, t in enumerate(times) if t <= AS_OF)
    won = rng.random() < chance
    closed_at = times[-1] + timedelta(days=rng.uniform(1, 40)) if closed else None
    final = ("Closed Won" if won else "Closed Lost") if closed else stages[-1][0]
    last_activity = created + timedelta(days=rng.uniform(0, 30)) if rng.random() < 0.7 else None
    return DealFacts(
        deal_id=uuid.UUID(int=rng.getrandbits(128)),
        outcome=("won" if won else "lost") if closed else "open",
        stage=final,
        stage_entered_at=closed_at if closed else stages[-1][1],
        stages=stages + (((final, closed_at),) if closed and closed_at else ()),
        amount=rng.choice((800.0, 2500.0, 12000.0, 60000.0)),
        currency="USD",
        product=f"P{product}",
        created_at=created,
        closed_at=closed_at,
        owner_id=owner,
        manager_id=manager,
        team=team,
        industry=f"industry-{industry}",
        employees=rng.randint(5, 20000),
        annual_revenue=rng.uniform(1e5, 1e9),
        country=rng.choice(("US", "DE", "FR", "GB", "JP", "BR", "IN")),
        territory=f"T{rng.randrange(40)}",
        activities=rng.randint(0, 12),
        last_activity_at=last_activity if last_activity and last_activity <= AS_OF else None,
    )


def generate(n_closed: int, n_open: int, seed: int = 1) -> list[DealFacts]:
    rng = random.Random(seed)
    managers = [uuid.uuid4() for _ in range(10)]
    owners = [(uuid.uuid4(), managers[i % 10], f"team-{i % 10}") for i in range(200)]
    return [_deal(rng, owners, closed=i < n_closed) for i in range(n_closed + n_open)]


def _timed(action: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up run."""
    action()
    seconds = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


@dataclass(frozen=True)
class Result:
    closed: int
    open: int
    generate_s: float
    train_s: float
    score_s: float
    lookup_s: float
    model: str
    held_out_auc: float | None


def run(*, n_open: int = 100_000, n_closed: int = 20_000, repeats: int = REPEATS) -> Result:
    started = time.perf_counter()
    deals = generate(n_closed, n_open)
    generated = time.perf_counter() - started
    open_deals = [d for d in deals if not d.closed]
    started = time.perf_counter()
    model = fit_deal_model(deals, as_of=AS_OF)
    trained = time.perf_counter() - started
    periods = current_periods(AS_OF.date(), start_month=1)
    score = _timed(lambda: score_deals(model, open_deals, as_of=AS_OF, periods=periods), repeats)
    lookup = _timed(lambda: [model.stages.of(d.stage) for d in open_deals], repeats)
    quality = model.scorer.quality if model.scorer else {}
    return Result(
        n_closed,
        len(open_deals),
        generated,
        trained,
        score,
        lookup,
        model.name,
        quality.get("held_out_auc"),
    )


def report(r: Result) -> str:
    rows = [
        [
            f"score {r.open:,} open deals (P(win), P(close in month, quarter), 3 reasons)",
            f"{r.score_s:.2f}",
            f"{r.open / r.score_s:,.0f}",
            f"{r.score_s / r.lookup_s:.0f}×",
            verdict(r.score_s < TARGET_SECONDS),
        ],
        [
            f"baseline: stage-table lookup of P(win) by stage, same {r.open:,} deals",
            f"{r.lookup_s:.3f}",
            f"{r.open / r.lookup_s:,.0f}",
            "1×",
            "",
        ],
        [
            f"train on {r.closed:,} closed deals (3 snapshots each), once per run",
            f"{r.train_s:.2f}",
            "",
            "",
            "",
        ],
    ]
    auc = f"{r.held_out_auc:.3f}" if r.held_out_auc is not None else "n/a"
    return "\n".join(
        [
            table(("what", "seconds", "deals/s", "÷ baseline", f"< {TARGET_SECONDS:g} s"), rows),
            "",
            f"Model `{r.model}`, held-out AUC {auc} on the generated deals; median of "
            f"{REPEATS} runs after a warm-up; generating the deals took {r.generate_s:.1f} s "
            "(not counted). Scoring is the pure domain function the run calls "
            "(`score_deals`); reading the deals from PostgreSQL and writing the scores "
            "are not in these figures.",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.forecast_scoring", description=__doc__)
    p.add_argument("--open", type=int, default=100_000)
    p.add_argument("--closed", type=int, default=20_000)
    args = p.parse_args()
    print(report(run(n_open=args.open, n_closed=args.closed)))


if __name__ == "__main__":
    main()
