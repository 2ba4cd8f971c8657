"""``python -m bench.sql_timing serve routing``: the CLI's ``serve``, counting and timing
(wall clock) every SQL statement sent through SQLAlchemy, and every session commit.

A diagnosis: where a consumer's time per event goes when its CPU profile shows only part
of it (the rest is waiting for PostgreSQL). Like bench/profiled.py, each SIGUSR1 writes the
figures since the previous one to ``$SALESOPS_BENCH_PROFILE/part-<n>.txt`` (one line per
statement: count, total ms, mean ms, the statement's first 160 characters) and starts over.
Statements sent on the raw asyncpg connection (``driver_connection``) are not seen.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_cli.main import main as cli_main

_stats: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_parts = 0


def _key(statement: str) -> str:
    return " ".join(statement.split())[:160]


def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
    conn.info.setdefault("bench_started", []).append(time.perf_counter())


def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
    started = conn.info["bench_started"].pop()
    entry = _stats[_key(statement)]
    entry[0] += 1
    entry[1] += time.perf_counter() - started


def _dump(_signum: int, _frame: FrameType | None) -> None:
    global _stats, _parts
    stats, _stats = _stats, defaultdict(lambda: [0, 0.0])
    _parts += 1
    out = Path(os.environ["SALESOPS_BENCH_PROFILE"])
    tmp = out / f".part-{_parts}.tmp"
    with tmp.open("w") as f:
        for key, (count, seconds) in sorted(stats.items(), key=lambda kv: -kv[1][1]):
            f.write(
                f"{count:8.0f} {seconds * 1000:10.1f} ms {seconds / count * 1000:7.2f} ms  {key}\n"
            )
    tmp.rename(out / f"part-{_parts}.txt")


def main() -> int:
    event.listen(Engine, "before_cursor_execute", _before)
    event.listen(Engine, "after_cursor_execute", _after)
    commit = AsyncSession.commit

    async def timed_commit(self: AsyncSession) -> None:
        started = time.perf_counter()
        try:
            await commit(self)
        finally:
            entry = _stats["COMMIT (AsyncSession.commit)"]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    AsyncSession.commit = timed_commit  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, _dump)
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
