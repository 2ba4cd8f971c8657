"""Independent writes sent as one statement: on a hot path (a consumer batch, a group of
REST requests) a round trip to PostgreSQL per write was most of the time the transaction
took on a busy machine, and each costs CPU on both ends."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

# A write: one INSERT, UPDATE or DELETE (no WITH of its own) and its arguments ($1, $2, ...).
Statement = tuple[str, Sequence[Any]]
_PARAM = re.compile(r"\$(\d+)")


def together(statements: Sequence[Statement]) -> Statement:
    """The writes as the data-modifying parts of one statement, each run once; they must not
    depend on each other's effects (all see the same snapshot) nor change one row twice."""
    parts: list[str] = []
    args: list[Any] = []
    for n, (sql, values) in enumerate(statements):
        parts.append(f"w{n} AS ({_shifted(sql, len(args))})")
        args.extend(values)
    return "WITH " + ",\n".join(parts) + "\nSELECT 1", args


def _shifted(sql: str, offset: int) -> str:
    return _PARAM.sub(lambda m: f"${int(m.group(1)) + offset}", sql)


async def execute(conn: asyncpg.Connection, statements: Sequence[Statement]) -> None:
    """Run the writes in one round trip (none: nothing is sent)."""
    if len(statements) == 1:
        await conn.execute(statements[0][0], *statements[0][1])
    elif statements:
        sql, args = together(statements)
        await conn.execute(sql, *args)
