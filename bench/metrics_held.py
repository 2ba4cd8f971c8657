"""What metrics' process holds that grows with the history: the business minutes it keeps per
touched lead (service_layer/reports.BusinessMinutes), against ``functools.lru_cache`` with the
same bound (what it used before). Bytes a value, measured with tracemalloc over ``--values``
leads touched on one schedule, and what that makes at the bound.
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Callable, Sequence
from functools import lru_cache

from bench.report import table
from salesops_metrics.service_layer.reports import BusinessMinutes, Schedule, _minutes_between

VALUES = 50_000
SCHEDULE: Schedule = (("09:00", "17:00", (0, 1, 2, 3, 4)), "Europe/Berlin")
START_US = 1_780_000_000_000_000


def touches(count: int) -> list[tuple[int, int]]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        created = START_US + i * 37_000_000 + rng.randrange(1_000_000)
        out.append((created, created + int(rng.expovariate(1 / 240) * 60_000_000)))
    return out


def held(keep: Callable[[int, int, Schedule], float], found: list[tuple[int, int]]) -> float:
    """Bytes a value ``keep`` holds after being asked for every one of ``found``."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for created, touched in found:
        keep(created, touched, SCHEDULE)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(found)


def run(values: int = VALUES) -> list[tuple[str, float, int]]:
    found = touches(values)
    lean = BusinessMinutes()

    @lru_cache(maxsize=lean.limit)
    def before(created: int, touched: int, hours: object, zone: str | None) -> float:
        return _minutes_between(created, touched, SCHEDULE)  # its key: all four arguments

    def lru(created: int, touched: int, schedule: Schedule) -> float:
        return before(created, touched, *schedule)

    return [
        ("`functools.lru_cache` (before)", held(lru, found), lean.limit),
        ("`BusinessMinutes`", held(lean, found), lean.limit),
    ]


def report(rows: list[tuple[str, float, int]], values: int = VALUES) -> str:
    return "\n".join(
        [
            f"Business minutes of {values:,} touched leads kept (tracemalloc):",
            "",
            table(
                ("kept by", "bytes a value", "MiB at the bound", "bound"),
                [
                    [what, f"{per:,.0f}", f"{per * bound / 2**20:,.0f}", f"{bound:,}"]
                    for what, per, bound in rows
                ],
            ),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.metrics_held", description=__doc__)
    p.add_argument("--values", type=int, default=VALUES)
    args = p.parse_args(argv)
    print(report(run(args.values), args.values))


if __name__ == "__main__":
    main()
