"""Independent writes sent as one statement: each keeps its own arguments."""

from __future__ import annotations

from salesops_common.writes import together


def test_writes_are_joined_with_their_placeholders_shifted_past_the_earlier_arguments() -> None:
    sql, args = together(
        [
            ("UPDATE a SET x = $2 WHERE id = $1", [1, "x"]),
            ("INSERT INTO b SELECT * FROM unnest($1::int[], $2::text[], $1::int[])", [[2], ["y"]]),
            ("DELETE FROM c WHERE id = $1", [3]),
        ]
    )
    assert sql == (
        "WITH w0 AS (UPDATE a SET x = $2 WHERE id = $1),\n"
        "w1 AS (INSERT INTO b SELECT * FROM unnest($3::int[], $4::text[], $3::int[])),\n"
        "w2 AS (DELETE FROM c WHERE id = $5)\n"
        "SELECT 1"
    )
    assert args == [1, "x", [2], ["y"], 3]


def test_placeholders_past_nine_are_shifted_whole() -> None:
    first = ("UPDATE a SET " + ", ".join(f"c{n} = ${n}" for n in range(1, 12)), list(range(11)))
    sql, args = together([first, ("DELETE FROM b WHERE id = $1 OR id = $10", [0] * 10)])
    assert "id = $12 OR id = $21" in sql
    assert "c11 = $11)" in sql
    assert len(args) == 21
