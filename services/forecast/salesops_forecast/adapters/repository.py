"""All of forecast's SQL: the pipeline snapshot, its win history, and issued forecasts."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from salesops_forecast.domain.forecast import Figures, IssuedForecast, OpenDeal, Scope
from salesops_forecast.domain.periods import FiscalPeriod
from salesops_forecast.domain.pipeline import DEAL_FIELDS, REP_FIELDS, VersionedRecord
from salesops_forecast.domain.probabilities import StageRecord, WinHistory

_DEAL_COLUMNS = (*DEAL_FIELDS, "stage_entered_at", "outcome", "deleted")
_REP_COLUMNS = REP_FIELDS


async def snapshot_isolation(session: AsyncSession) -> None:
    """Make every read of this transaction see one snapshot (call before any statement), so
    the win history and the open deals agree although consumers commit meanwhile. A second
    call in the same session (a scheduled run, then the run itself) changes nothing."""
    if session.info.get("snapshot_isolation"):
        return
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    session.info["snapshot_isolation"] = True


# Scheduled runs of all forecast processes on one database take turns under this lock.
SCHEDULE_LOCK = "forecast.scheduled_run"


async def try_schedule_lock(session: AsyncSession) -> bool:
    """Held until this transaction ends; False when another process holds it."""
    rows = await session.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": SCHEDULE_LOCK}
    )
    return bool(rows.scalar_one())


async def ran_since(session: AsyncSession, since: datetime) -> bool:
    rows = await session.execute(
        text("SELECT EXISTS (SELECT 1 FROM forecast_runs WHERE as_of >= :since)"),
        {"since": since},
    )
    return bool(rows.scalar_one())


def _versioned(row: RowMapping, columns: Sequence[str]) -> VersionedRecord:
    times = {k: datetime.fromisoformat(v) for k, v in row["field_times"].items()}
    values = {c: row[c] for c in columns if row[c] is not None and c in times}
    return VersionedRecord(values, times)


async def lock_record(
    session: AsyncSession, table: str, key: str, record_id: UUID, columns: Sequence[str]
) -> VersionedRecord:
    """The stored record, locked for this transaction, created empty on first sight: one
    statement, since the no-op update of an upsert takes the row lock as FOR UPDATE would."""
    upsert = text(
        f"INSERT INTO {table} ({key}) VALUES (:id) "
        f"ON CONFLICT ({key}) DO UPDATE SET {key} = EXCLUDED.{key} "
        f"RETURNING {', '.join(columns)}, field_times"
    )
    row = (await session.execute(upsert, {"id": record_id})).mappings().one()
    return _versioned(row, columns)


async def lock_records(
    session: AsyncSession, table: str, key: str, ids: Collection[UUID], columns: Sequence[str]
) -> dict[UUID, VersionedRecord]:
    """``lock_record`` for several records in one statement, locked in id order (copies
    locking shared rows take them in the same order)."""
    upsert = text(
        f"INSERT INTO {table} ({key}) SELECT id FROM unnest(CAST(:ids AS uuid[])) AS u(id) "
        f"ORDER BY id ON CONFLICT ({key}) DO UPDATE SET {key} = EXCLUDED.{key} "
        f"RETURNING {key}, {', '.join(columns)}, field_times"
    )
    rows = (await session.execute(upsert, {"ids": sorted(set(ids))})).mappings().all()
    return {row[key]: _versioned(row, columns) for row in rows}


async def save_records(
    session: AsyncSession,
    table: str,
    key: str,
    records: Mapping[UUID, VersionedRecord],
    columns: Sequence[str],
    defaults: Mapping[str, Any],
) -> None:
    """``save_record`` for several (locked) records in one statement; the rows travel as
    JSON and take the table's column types (jsonb_populate_recordset)."""
    if not records:
        return
    rows = [
        {
            key: record_id,
            **{c: record.values.get(c, defaults.get(c)) for c in columns},
            "field_times": {k: v.isoformat() for k, v in record.times.items()},
            "last_event_at": record.last_event_at,
        }
        for record_id, record in records.items()
    ]
    sets = ", ".join(f"{c} = r.{c}" for c in (*columns, "field_times", "last_event_at"))
    await session.execute(
        text(
            f"UPDATE {table} t SET {sets} "
            f"FROM jsonb_populate_recordset(NULL::{table}, CAST(:rows AS jsonb)) AS r "
            f"WHERE t.{key} = r.{key}"
        ),
        {"rows": orjson.dumps(rows, default=str).decode()},
    )


async def save_record(
    session: AsyncSession,
    table: str,
    key: str,
    record_id: UUID,
    record: VersionedRecord,
    columns: Sequence[str],
    defaults: Mapping[str, Any],
) -> None:
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    params = {c: record.values.get(c, defaults.get(c)) for c in columns}
    times = {k: v.isoformat() for k, v in record.times.items()}
    await session.execute(
        text(
            f"UPDATE {table} SET {assignments}, field_times = CAST(:times AS jsonb), "
            f"last_event_at = :last_event_at WHERE {key} = :id"
        ),
        {
            **params,
            "id": record_id,
            "times": orjson.dumps(times).decode(),
            "last_event_at": record.last_event_at,
        },
    )


async def lock_deal(session: AsyncSession, deal_id: UUID) -> VersionedRecord:
    return await lock_record(session, "deals", "deal_id", deal_id, _DEAL_COLUMNS)


_DEAL_TYPES = {
    "stage": "text",
    "amount": "numeric",
    "currency": "text",
    "owner_id": "uuid",
    "account_id": "uuid",
    "created_at": "timestamptz",
    "expected_close_date": "date",
    "closed_at": "timestamptz",
    "product": "text",
    "lead_id": "uuid",
    "stage_entered_at": "timestamptz",
    "outcome": "text",
    "deleted": "boolean",
}
_DEAL_DEFAULTS: Mapping[str, Any] = {"outcome": "open", "deleted": False}


async def save_deals(session: AsyncSession, records: Mapping[UUID, VersionedRecord]) -> None:
    """Write a batch's merged deals in one statement (their rows are already locked)."""
    if not records:
        return
    ids = list(records)
    params: dict[str, Any] = {"ids": ids}
    for column in _DEAL_COLUMNS:
        params[column] = [records[i].values.get(column, _DEAL_DEFAULTS.get(column)) for i in ids]
    params["times"] = [
        orjson.dumps({k: v.isoformat() for k, v in records[i].times.items()}).decode() for i in ids
    ]
    params["last"] = [records[i].last_event_at for i in ids]
    arrays = ", ".join(f"CAST(:{c} AS {_DEAL_TYPES[c]}[])" for c in _DEAL_COLUMNS)
    sets = ", ".join(f"{c} = u.{c}" for c in _DEAL_COLUMNS)
    await session.execute(
        text(
            f"UPDATE deals d SET {sets}, field_times = u.field_times, "
            f"last_event_at = u.last_event_at "
            f"FROM unnest(CAST(:ids AS uuid[]), {arrays}, CAST(:times AS jsonb[]), "
            f"CAST(:last AS timestamptz[])) "
            f"AS u(deal_id, {', '.join(_DEAL_COLUMNS)}, field_times, last_event_at) "
            f"WHERE d.deal_id = u.deal_id"
        ),
        params,
    )


async def lock_rep(session: AsyncSession, rep_id: UUID) -> VersionedRecord:
    return await lock_record(session, "reps", "rep_id", rep_id, _REP_COLUMNS)


async def save_rep(session: AsyncSession, rep_id: UUID, record: VersionedRecord) -> None:
    await save_record(session, "reps", "rep_id", rep_id, record, _REP_COLUMNS, {})


async def record_stages_reached(
    session: AsyncSession, reached: Mapping[tuple[UUID, str], datetime]
) -> None:
    """Remember the stages deals reached, earliest sighting per (deal, stage); late events
    only move a first sighting earlier: a deal that reached a stage once has reached it."""
    if not reached:
        return
    keys = sorted(reached)
    await session.execute(
        text(
            "INSERT INTO deal_stages (deal_id, stage, first_seen_at) "
            "SELECT * FROM unnest(CAST(:d AS uuid[]), CAST(:s AS text[]), "
            "CAST(:t AS timestamptz[])) "
            "ON CONFLICT (deal_id, stage) DO UPDATE "
            "SET first_seen_at = LEAST(deal_stages.first_seen_at, EXCLUDED.first_seen_at)"
        ),
        {"d": [k[0] for k in keys], "s": [k[1] for k in keys], "t": [reached[k] for k in keys]},
    )


_CLOSED = "d.outcome IN ('won', 'lost') AND NOT d.deleted"


async def win_history(session: AsyncSession) -> WinHistory:
    totals = await session.execute(
        text(
            "SELECT count(*) FILTER (WHERE outcome = 'won') AS won, count(*) AS closed "
            f"FROM deals d WHERE {_CLOSED}"
        )
    )
    won, closed = totals.one()
    stages = await session.execute(
        text(
            "SELECT s.stage, count(*) FILTER (WHERE d.outcome = 'won') AS won, "
            "count(*) AS closed FROM deal_stages s JOIN deals d USING (deal_id) "
            f"WHERE {_CLOSED} GROUP BY s.stage"
        )
    )
    by_stage = {r.stage: StageRecord(r.won, r.closed) for r in stages}
    return WinHistory(won=won, closed=closed, by_stage=by_stage)


async def open_deals(session: AsyncSession) -> list[OpenDeal]:
    rows = await session.execute(
        text(
            "SELECT d.deal_id, d.stage, d.amount, d.currency, d.owner_id, r.team, "
            "d.expected_close_date FROM deals d LEFT JOIN reps r ON r.rep_id = d.owner_id "
            "WHERE d.outcome = 'open' AND NOT d.deleted ORDER BY d.deal_id"
        )
    )
    return [OpenDeal(**r._asdict()) for r in rows]


async def add_run(
    session: AsyncSession,
    *,
    run_id: UUID,
    as_of: datetime,
    currency: str,
    history: WinHistory,
    stage_probabilities: Mapping[str, float],
    skipped_other_currency: int,
    models: Mapping[str, Any],
) -> None:
    await session.execute(
        text(
            "INSERT INTO forecast_runs (run_id, as_of, currency, won_deals, closed_deals, "
            "stage_probabilities, skipped_other_currency, deal_model, lead_model) "
            "VALUES (:run_id, :as_of, :currency, :won, :closed, CAST(:probabilities AS jsonb), "
            ":skipped, CAST(:deal_model AS jsonb), CAST(:lead_model AS jsonb))"
        ),
        {
            "run_id": run_id,
            "as_of": as_of,
            "currency": currency,
            "won": history.won,
            "closed": history.closed,
            "probabilities": orjson.dumps(stage_probabilities).decode(),
            "skipped": skipped_other_currency,
            "deal_model": orjson.dumps(models["deal_model"]).decode(),
            "lead_model": orjson.dumps(models["lead_model"]).decode(),
        },
    )


def _forecast_params(f: IssuedForecast) -> dict[str, Any]:
    return {
        "forecast_id": f.forecast_id,
        "run_id": f.run_id,
        "as_of": f.as_of,
        "currency": f.currency,
        "scope_kind": f.scope.kind,
        "scope_id": f.scope.id,
        "period": f.period.name,
        "period_kind": f.period.kind,
        "starts_on": f.period.starts_on,
        "ends_on": f.period.ends_on,
        "point": f.figures.point,
        "lo80": f.figures.lo80,
        "hi80": f.figures.hi80,
        "lo95": f.figures.lo95,
        "hi95": f.figures.hi95,
        "commit_amount": f.figures.commit,
        "best_case_amount": f.figures.best_case,
        "pipeline_amount": f.figures.pipeline,
        "deals": f.figures.deals,
        "skipped_other_currency": f.skipped_other_currency,
        "methods": orjson.dumps(dict(f.methods)).decode(),
    }


_FORECAST_COLUMNS = (
    "forecast_id",
    "run_id",
    "as_of",
    "currency",
    "scope_kind",
    "scope_id",
    "period",
    "period_kind",
    "starts_on",
    "ends_on",
    "point",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
    "commit_amount",
    "best_case_amount",
    "pipeline_amount",
    "deals",
    "skipped_other_currency",
    "methods",
)
_INSERT_FORECAST = text(
    f"INSERT INTO forecasts ({', '.join(_FORECAST_COLUMNS)}) VALUES "
    f"({', '.join(':' + c for c in _FORECAST_COLUMNS[:-1])}, CAST(:methods AS jsonb))"
)


async def add_forecasts(session: AsyncSession, forecasts: Sequence[IssuedForecast]) -> None:
    if forecasts:
        await session.execute(_INSERT_FORECAST, [_forecast_params(f) for f in forecasts])


def _issued(row: RowMapping) -> IssuedForecast:
    figures = Figures(
        point=row["point"],
        lo80=row["lo80"],
        hi80=row["hi80"],
        lo95=row["lo95"],
        hi95=row["hi95"],
        commit=row["commit_amount"],
        best_case=row["best_case_amount"],
        pipeline=row["pipeline_amount"],
        deals=row["deals"],
    )
    period = FiscalPeriod(row["period_kind"], row["period"], row["starts_on"], row["ends_on"])
    return IssuedForecast(
        forecast_id=row["forecast_id"],
        run_id=row["run_id"],
        as_of=row["as_of"],
        currency=row["currency"],
        scope=Scope(row["scope_kind"], row["scope_id"]),
        period=period,
        figures=figures,
        skipped_other_currency=row["skipped_other_currency"],
        methods=row["methods"],
    )


_SELECT_FORECASTS = f"SELECT {', '.join(_FORECAST_COLUMNS)} FROM forecasts"


async def get_forecast(session: AsyncSession, forecast_id: UUID) -> IssuedForecast | None:
    rows = await session.execute(
        text(f"{_SELECT_FORECASTS} WHERE forecast_id = :id"), {"id": forecast_id}
    )
    row = rows.mappings().first()
    return _issued(row) if row else None


async def latest_forecasts(
    session: AsyncSession, *, scope_kind: str | None, scope_id: str | None, period: str | None
) -> list[IssuedForecast]:
    """The newest forecast of every (scope, period) that matches the filters."""
    rows = await session.execute(
        text(
            f"SELECT * FROM (SELECT DISTINCT ON (scope_kind, scope_id, period) "
            f"{', '.join(_FORECAST_COLUMNS)} FROM forecasts "
            "WHERE (CAST(:kind AS text) IS NULL OR scope_kind = :kind) "
            "AND (CAST(:scope_id AS text) IS NULL OR scope_id = :scope_id) "
            "AND (CAST(:period AS text) IS NULL OR period = :period) "
            "ORDER BY scope_kind, scope_id, period, as_of DESC, seq DESC) latest "
            "ORDER BY period_kind, period, scope_kind, scope_id NULLS FIRST"
        ),
        {"kind": scope_kind, "scope_id": scope_id, "period": period},
    )
    return [_issued(r) for r in rows.mappings()]


async def pipeline_counts(session: AsyncSession) -> dict[str, int]:
    """Deals known to the snapshot by outcome (deleted deals left out)."""
    rows = await session.execute(
        text("SELECT outcome, count(*) AS n FROM deals WHERE NOT deleted GROUP BY outcome")
    )
    counts = {"open": 0, "won": 0, "lost": 0}
    counts.update({r.outcome: int(r.n) for r in rows})
    return counts
