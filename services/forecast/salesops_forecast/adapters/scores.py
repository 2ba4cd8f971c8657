"""SQL of scoring: the facts the models learn from and score, the scores kept per deal and
lead, and what was last published of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_common.db import driver_connection
from salesops_forecast.domain.facts import DealFacts, LeadFacts

_DEAL_FACTS = """
    SELECT d.deal_id, d.outcome, d.stage, d.stage_entered_at, d.amount, d.currency,
           d.product, d.created_at, d.closed_at, d.expected_close_date, d.owner_id,
           r.manager_id, r.team, a.industry, a.employees, a.annual_revenue, a.country,
           a.territory_id AS account_territory, coalesce(s.activities, 0) AS activities,
           s.last_at AS last_activity_at, h.stages, h.stage_times,
           CASE WHEN d.created_at IS NULL THEN (
               SELECT min(CAST(f.value AS timestamptz)) FROM jsonb_each_text(d.field_times) f
           ) END AS first_seen_at
    FROM deals d
    LEFT JOIN reps r ON r.rep_id = d.owner_id
    LEFT JOIN accounts a ON a.account_id = d.account_id AND NOT a.deleted
    LEFT JOIN activity_stats s ON s.subject_kind = 'deal' AND s.subject_id = d.deal_id
    LEFT JOIN (
        SELECT s.deal_id, array_agg(s.stage ORDER BY s.first_seen_at) AS stages,
               array_agg(s.first_seen_at ORDER BY s.first_seen_at) AS stage_times
        FROM deal_stages s JOIN deals c ON c.deal_id = s.deal_id AND c.outcome <> 'open'
        GROUP BY s.deal_id
    ) h ON h.deal_id = d.deal_id
    WHERE NOT d.deleted AND (d.outcome = 'open' OR d.closed_at IS NOT NULL)
    ORDER BY d.deal_id
"""


@dataclass(frozen=True)
class DealRow:
    facts: DealFacts
    account_territory: str | None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _deal(r: asyncpg.Record) -> DealRow:
    stages = tuple(zip(r["stages"] or (), r["stage_times"] or (), strict=True))
    facts = DealFacts(
        deal_id=r["deal_id"],
        outcome=r["outcome"],
        stage=r["stage"],
        stage_entered_at=r["stage_entered_at"],
        stages=stages,
        amount=_float(r["amount"]),
        currency=r["currency"],
        product=r["product"],
        created_at=r["created_at"],
        closed_at=r["closed_at"],
        expected_close_date=r["expected_close_date"],
        owner_id=r["owner_id"],
        manager_id=r["manager_id"],
        team=r["team"],
        industry=r["industry"],
        employees=r["employees"],
        annual_revenue=_float(r["annual_revenue"]),
        country=r["country"],
        activities=r["activities"],
        last_activity_at=r["last_activity_at"],
        first_seen_at=r["first_seen_at"],
    )
    return DealRow(facts, r["account_territory"])


async def deal_rows(session: AsyncSession) -> list[DealRow]:
    """Every deal that is open or closed with a close time (deleted ones left out). Only
    closed deals come with their stage history (the training rows need the stage they were
    in earlier); an open deal is scored as of now, in its current stage."""
    # On the driver connection (same transaction and snapshot): 100,000 rows cost seconds
    # less than through SQLAlchemy's result rows.
    conn = await driver_connection(session)
    return [_deal(r) for r in await conn.fetch(_DEAL_FACTS)]


_LEAD_FACTS = text(
    """
    SELECT l.lead_id, l.lifecycle, l.merged_into IS NOT NULL AS merged, l.lead_source,
           l.industry, l.employees, l.annual_revenue, l.country, l.created_at,
           CASE WHEN l.lifecycle IN ('converted', 'disqualified')
                THEN CAST(l.field_times ->> 'lifecycle' AS timestamptz) END AS decided_at,
           coalesce(s.activities, 0) AS activities, s.last_at AS last_activity_at,
           l.duplicates, o.outcomes
    FROM leads l
    LEFT JOIN activity_stats s ON s.subject_kind = 'lead' AND s.subject_id = l.lead_id
    LEFT JOIN (
        SELECT lead_id, array_agg(outcome) AS outcomes FROM deals
        WHERE lead_id IS NOT NULL AND NOT deleted GROUP BY lead_id
    ) o ON o.lead_id = l.lead_id
    WHERE l.lifecycle <> 'deleted' AND l.field_times ->> 'lifecycle' IS NOT NULL
    ORDER BY l.lead_id
    """
)


async def lead_facts(session: AsyncSession) -> list[LeadFacts]:
    """Leads known from a lead event (a lead only heard of as a merge target is left out)."""
    rows = (await session.execute(_LEAD_FACTS)).mappings()
    return [
        LeadFacts(
            lead_id=r["lead_id"],
            lifecycle=r["lifecycle"],
            merged=r["merged"],
            lead_source=r["lead_source"],
            industry=r["industry"],
            employees=r["employees"],
            annual_revenue=_float(r["annual_revenue"]),
            country=r["country"],
            created_at=r["created_at"],
            decided_at=r["decided_at"],
            activities=r["activities"],
            last_activity_at=r["last_activity_at"],
            duplicates=r["duplicates"],
            deal_outcomes=tuple(r["outcomes"] or ()),
        )
        for r in rows
    ]


async def rep_emails(session: AsyncSession) -> dict[UUID, str | None]:
    rows = await session.execute(text("SELECT rep_id, email FROM reps"))
    return {r.rep_id: r.email for r in rows}


async def published_deal_scores(session: AsyncSession) -> dict[UUID, tuple[float, float]]:
    rows = await session.execute(
        text(
            "SELECT deal_id, published_win, published_close FROM deal_scores "
            "WHERE published_at IS NOT NULL"
        )
    )
    return {r.deal_id: (r.published_win, r.published_close) for r in rows}


async def published_lead_scores(session: AsyncSession) -> dict[UUID, float]:
    rows = await session.execute(
        text(
            "SELECT lead_id, published_probability FROM lead_scores WHERE published_at IS NOT NULL"
        )
    )
    return {r.lead_id: r.published_probability for r in rows}


def _json_list(items: Sequence[Any]) -> list[str]:
    return [orjson.dumps(i).decode() for i in items]


@dataclass(frozen=True)
class ScoreRows:
    """One run's scores, column by column (``values`` by score column; ``published``:
    published in this run)."""

    ids: list[UUID]
    values: Mapping[str, Sequence[float]]
    reasons: Sequence[list[str]]
    published: Sequence[bool]


@dataclass(frozen=True)
class ScoreTable:
    name: str
    key: str
    scores: tuple[str, ...]
    published: Mapping[str, str]  # column of the last published value -> its score column


DEAL_SCORES = ScoreTable(
    "deal_scores",
    "deal_id",
    ("win_probability", "close_in_month", "close_in_quarter"),
    {"published_win": "win_probability", "published_close": "close_in_quarter"},
)
LEAD_SCORES = ScoreTable(
    "lead_scores", "lead_id", ("probability",), {"published_probability": "probability"}
)


def _upsert(t: ScoreTable) -> str:
    scores, published = ", ".join(t.scores), ", ".join(t.published)
    copied = "".join(f"CASE WHEN u.pub THEN u.{c} END, " for c in t.published.values())
    arrays = "".join(f"CAST(:{c} AS float8[]), " for c in t.scores)
    kept = "".join(f"{c} = EXCLUDED.{c}, " for c in t.scores)
    last = "".join(f"{c} = coalesce(EXCLUDED.{c}, s.{c}), " for c in (*t.published, "published_at"))
    return f"""
        INSERT INTO {t.name} AS s ({t.key}, run_id, scored_at, {scores}, model, model_version,
            reasons, {published}, published_at)
        SELECT u.id, :run_id, :at, u.{", u.".join(t.scores)}, :model, :version, u.reasons,
            {copied}CASE WHEN u.pub THEN CAST(:at AS timestamptz) END
        FROM unnest(CAST(:ids AS uuid[]), {arrays}CAST(:reasons AS jsonb[]),
            CAST(:pub AS boolean[])) AS u(id, {scores}, reasons, pub)
        ON CONFLICT ({t.key}) DO UPDATE SET run_id = EXCLUDED.run_id,
            scored_at = EXCLUDED.scored_at, {kept}model = EXCLUDED.model,
            model_version = EXCLUDED.model_version, {last}reasons = EXCLUDED.reasons
        """


async def save_scores(
    session: AsyncSession,
    table: ScoreTable,
    rows: ScoreRows,
    *,
    run_id: UUID,
    scored_at: datetime,
    model: str,
    model_version: str,
) -> None:
    """Keep each deal's or lead's newest score; the last published values change only
    when this run publishes."""
    if not rows.ids:
        return
    await session.execute(
        text(_upsert(table)),
        {
            "run_id": run_id,
            "at": scored_at,
            "model": model,
            "version": model_version,
            "ids": rows.ids,
            **{c: list(rows.values[c]) for c in table.scores},
            "reasons": _json_list(rows.reasons),
            "pub": list(rows.published),
        },
    )


async def deal_score(session: AsyncSession, deal_id: UUID) -> RowMapping | None:
    rows = await session.execute(
        text(
            "SELECT s.*, r.deal_model AS model_details FROM deal_scores s "
            "JOIN forecast_runs r USING (run_id) WHERE s.deal_id = :id"
        ),
        {"id": deal_id},
    )
    return rows.mappings().first()


async def lead_score(session: AsyncSession, lead_id: UUID) -> RowMapping | None:
    rows = await session.execute(
        text(
            "SELECT s.*, r.lead_model AS model_details FROM lead_scores s "
            "JOIN forecast_runs r USING (run_id) WHERE s.lead_id = :id"
        ),
        {"id": lead_id},
    )
    return rows.mappings().first()
