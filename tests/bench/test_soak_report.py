"""bench/soak.py's arithmetic and report, on made-up measurements (no servers)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.load import LoadResult
from bench.soak import Drain, RssSample, Slice, SoakRun, growth, parse, plan, report, slice_plan

pytestmark = pytest.mark.unit


def load(latencies_ms: list[float], *, errors: int = 0) -> LoadResult:
    return LoadResult(
        requests=len(latencies_ms) - errors,
        events=len(latencies_ms) - errors,
        seconds=60.0,
        latencies=[ms / 1000 for ms in latencies_ms],
        errors=errors,
        statuses=Counter({500: errors}) if errors else Counter(),
        rate=len(latencies_ms) / 60.0,
        scheduled=len(latencies_ms),
    )


def test_a_20_minute_soak_is_four_5_minute_slices() -> None:
    assert slice_plan(20) == [300.0] * 4


def test_a_short_soak_is_cut_in_thirds_and_a_remainder_joins_the_last_slice() -> None:
    assert slice_plan(3) == [60.0] * 3
    assert slice_plan(22) == [300.0, 300.0, 300.0, 420.0]
    assert sum(slice_plan(7.5, 2)) == pytest.approx(450.0)


def test_growth_runs_from_the_first_sample_after_the_warm_up_to_the_last() -> None:
    samples = [
        RssSample(0.0, {"ingest": 80.0, "broker": 50.0}),
        RssSample(60.0, {"ingest": 120.0, "broker": 300.0}),
        RssSample(120.0, {"ingest": 140.0, "broker": 500.0}),
        RssSample(180.0, {"ingest": 130.0, "broker": 700.0}),
    ]
    assert growth(samples, since=60.0) == {
        "ingest": (120.0, 130.0, 140.0),
        "broker": (300.0, 700.0, 700.0),
    }


def test_the_report_compares_the_first_and_last_slices_and_shows_the_drain() -> None:
    first, last = Slice(0, 0.0, 60.0), Slice(1, 60.0, 60.0)
    first.loads = {"POST /v1/events": load([10.0] * 99 + [500.0])}
    last.loads = {"POST /v1/events": load([10.0] * 98 + [900.0, 950.0], errors=1)}
    first.ruleset_ms, last.ruleset_ms = [40.0, 60.0], [45.0]
    run = SoakRun(
        minutes=2,
        asked={"webhooks": 50.0, "events": 20.0, "reads": 5.0},
        slices=[first, last],
        rss=[
            RssSample(0.0, {"ingest": 100.0}),
            RssSample(60.0, {"ingest": 110.0}),
            RssSample(130.0, {"ingest": 125.0}),
        ],
        drain=Drain(
            outbox={"ingest": 1.5},
            lag={"salesops-metrics-all": None},
            initial={"ingest": 40, "salesops-metrics-all": 9000},
        ),
    )
    text = report(run)
    assert "= 250 events/s" in text
    assert "| POST /v1/events | 500 | 950 | 199 | 1 | no |" in text
    assert "| ruleset PUT | 60 | 45 | 3 | 0 | – |" in text
    assert "| ingest | 110 | 125 | 125 | +15 |" in text
    assert "| ingest outbox | 40 | 1.5 s |" in text
    assert "| salesops-metrics-all lag | 9,000 | not within 120 s |" in text


def test_a_capacity_ramp_is_one_step_per_rate_split_as_the_soak_splits_it() -> None:
    args = parse(["--capacity", "50,100", "--step-minutes", "2"])
    assert plan(args) == [(120.0, 10.0, 4.0), (120.0, 20.0, 8.0)]
    assert (
        plan(parse(["--minutes", "3", "--webhooks", "25", "--arrays", "10"]))
        == [(60.0, 25.0, 10.0)] * 3
    )


def test_the_capacity_is_the_last_step_kept_up_before_the_first_that_was_not() -> None:
    steps = []
    # 100 events/s: 150 left (1.5 s of work); 200: 300 left (1.5 s); 300: 900 left (3 s).
    for index, (rate, left) in enumerate([(100.0, 150), (200.0, 300), (300.0, 900)]):
        step = Slice(index, index * 60.0, 60.0, webhooks=rate * 0.2, arrays=rate * 0.08)
        step.loads = {"POST /v1/events": load([10.0] * 100)}
        step.backlog = {"routing lag": left, "ingest outbox": 0}
        steps.append(step)
    # A step whose requests were not all answered is not kept up, whatever is left.
    late = Slice(3, 180.0, 60.0, webhooks=80.0, arrays=32.0)
    late.loads = {"POST /v1/events": load([10.0] * 99 + [3000.0], errors=1)}
    steps.append(late)
    run = SoakRun(2, {"webhooks": 0, "events": 0, "reads": 5.0}, slices=steps, capacity=True)
    assert [s.kept_up for s in steps] == [True, True, False, False]
    text = report(run)
    assert "Capacity: 200 events/s" in text
    assert "half of it, for the soak: 100 events/s = --webhooks 20 --arrays 8" in text
    assert "routing lag" in text
