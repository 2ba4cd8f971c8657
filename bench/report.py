"""Markdown pieces of the report."""

from __future__ import annotations

from collections.abc import Sequence

from bench.load import LoadResult

LOAD_HEADER = (
    "endpoint",
    "requests/s",
    "events/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "events/s ÷ bare rps",
)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def load_row(name: str, r: LoadResult, base_rps: float) -> list[str]:
    return [
        name,
        f"{r.rps:,.0f}",
        f"{r.eps:,.0f}",
        f"{r.p50:.1f}",
        f"{r.p99:.1f}",
        errors(r),
        f"{r.eps / base_rps:.2f}",
    ]


def errors(r: LoadResult) -> str:
    return f"{r.errors} ({r.unexpected()})" if r.errors else "0"


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"
