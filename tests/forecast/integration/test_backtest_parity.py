"""The method the backtest measures is the method a forecast run publishes: deals sent to
the forecast service as the Maven import sends them, up to an origin, and a run as of that
origin publish what ``salesops forecast backtest``'s replay forecasts at that origin from
the same deals: every method's point, the blend's weights and the blend, for the company,
each team and each rep. Real PostgreSQL and broker; the deal model is the service's own in
both."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import httpx
import numpy as np
import pytest

from salesops_common.db import UnitOfWork, create_engine
from salesops_common.envelope import Envelope
from salesops_common.events import Account, Deal, Rep
from salesops_common.kafka import Topics
from salesops_common.settings import database_dsn
from salesops_forecast.backtest.deals import DealTable
from salesops_forecast.backtest.replay import BLEND, replay
from salesops_forecast.backtest.win_odds import ServiceWinOdds
from salesops_forecast.domain.forecast import IssuedForecast
from salesops_forecast.domain.method import PIPELINE
from salesops_forecast.domain.pipeline_model import days
from salesops_forecast.service_layer.forecasting import run_forecast
from tests.forecast.integration.test_forecasts import publish_and_wait
from tests.support import Isolation

pytestmark = pytest.mark.integration

ORIGIN = date(2017, 10, 1)
AGENTS = {"ann": "East", "bob": "East", "cat": "West", "dan": "West"}
MANAGERS = {"East": "Mia", "West": "Max"}
PRICES = {"GTX": 1000.0, "MG": 600.0}  # one amount per product: see ``sample``
SECTORS = ("retail", "software")


def person(kind: str, name: str) -> UUID:
    # As backtest/win_odds.py names the sample's people.
    return uuid5(NAMESPACE_URL, f"maven:{kind}:{name}")


def sample() -> tuple[DealTable, list[str]]:
    """Deals engaged every other day of 2017 to September, closing 3–70 days later (won
    more often on GTX and in retail), open if that is after December. A won deal books its
    list price: the service keeps only a deal's newest amount, so a close value other than
    the list price would be an amount the backtest knows at past origins and the service
    not (docs/forecast.md)."""
    rng = np.random.default_rng(6)
    rows: list[tuple[str, str, str, date, date | None, bool]] = []
    day = date(2017, 1, 2)
    while day < date(2017, 9, 28):
        agent = str(rng.choice(list(AGENTS)))
        product = str(rng.choice(list(PRICES)))
        sector = str(rng.choice(SECTORS))
        closes: date | None = day + timedelta(days=int(rng.integers(3, 70)))
        odds = 0.45 + 0.2 * (product == "GTX") + 0.15 * (sector == "retail")
        won = bool(rng.random() < odds)
        if len(rows) == 0:
            closes, won = date(2017, 1, 10), True  # January books something
        if closes is not None and closes > date(2017, 12, 31):
            closes, won = None, False
        rows.append((agent, product, sector, day, closes, won))
        day += timedelta(days=int(rng.integers(1, 4)))
    offices = [AGENTS[r[0]] for r in rows]
    table = DealTable(
        agent=np.array([r[0] for r in rows]),
        office=np.array(offices),
        product=np.array([r[1] for r in rows]),
        sector=np.array([r[2] for r in rows]),
        engaged=days([r[3] for r in rows]),
        closed=days([r[4] for r in rows]),
        won=np.array([r[5] for r in rows]),
        value=np.array([PRICES[r[1]] if r[5] else 0.0 for r in rows]),
        list_price=np.array([PRICES[r[1]] for r in rows]),
        manager=np.array([MANAGERS[o] for o in offices]),
    )
    return table, [r[2] for r in rows]


def noon(day: Any) -> datetime:
    d = day.astype(date) if isinstance(day, np.datetime64) else day
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC)


def envelope(type_name: str, data: Any, time: datetime) -> Envelope:
    return Envelope.of(type_name, data, source="/ingest/api/default", time=time)


def known_at_origin(table: DealTable, sectors: list[str]) -> list[Envelope]:
    """What the service has heard by the origin, sent as the Maven import sends it: a deal
    created Engaging at its list price on its engage day, its outcome (stage Won or Lost,
    the close value, 0 when lost) on its close day; the events of a day at noon."""
    start = datetime(2016, 12, 1, tzinfo=UTC)
    events = [
        envelope(
            "rep.created",
            Rep(
                id=person("rep", agent),
                source="api",
                source_id=agent,
                team=office,
                active=True,
                manager_id=person("manager", MANAGERS[office]),
            ),
            start,
        )
        for agent, office in AGENTS.items()
    ]
    events += [
        envelope(
            "account.created",
            Account(id=person("account", s), source="api", source_id=s, industry=s),
            start,
        )
        for s in SECTORS
    ]
    origin = np.datetime64(ORIGIN, "D")
    for i in range(len(table)):
        if not table.engaged[i] < origin:
            continue
        deal_id = UUID(int=i + 1)  # as backtest/win_odds.py numbers the deals
        created = noon(table.engaged[i])
        fields: dict[str, Any] = {
            "owner_id": person("rep", str(table.agent[i])),
            "account_id": person("account", sectors[i]),
            "product": str(table.product[i]),
            "currency": "USD",
        }
        events.append(
            envelope(
                "deal.created",
                Deal(
                    id=deal_id,
                    source="api",
                    source_id=str(i),
                    stage="Engaging",
                    amount=Decimal(repr(float(table.list_price[i]))),
                    created_at=created,
                    **fields,
                ),
                created,
            )
        )
        if table.closed[i] < origin:
            closed = noon(table.closed[i])
            outcome = "Won" if table.won[i] else "Lost"
            events.append(
                envelope(
                    f"deal.{outcome.lower()}",
                    Deal(
                        id=deal_id,
                        source="api",
                        source_id=str(i),
                        stage=outcome,
                        amount=Decimal(repr(float(table.value[i]))),
                        closed_at=closed,
                        **fields,
                    ),
                    closed,
                )
            )
    return events


async def test_a_run_publishes_what_the_backtest_forecasts_at_the_same_origin(
    forecast: httpx.AsyncClient, iso: Isolation
) -> None:
    table, sectors = sample()
    await publish_and_wait(forecast, iso, known_at_origin(table, sectors))
    engine = create_engine(database_dsn(iso.database_url, iso.database("forecast")))
    try:
        async with UnitOfWork(engine)() as session:
            run = await run_forecast(
                session,
                as_of=datetime(ORIGIN.year, ORIGIN.month, ORIGIN.day, tzinfo=UTC),
                fiscal_year_start_month=1,
                currency="USD",
                topics=Topics(iso.topic_prefix),
            )
    finally:
        await engine.dispose()

    replayed = replay(table, kind="month", win_odds=ServiceWinOdds())
    at = [replayed.periods[k][0] for k in replayed.origins].index(ORIGIN)
    months = {f.scope: f for f in run.forecasts if f.period.kind == "month"}
    pipeline = run.scoring.pipeline_method()
    names = {pipeline: PIPELINE}

    # The weights: from the same six earlier origins, by the same rule.
    published = next(iter(months.values())).methods
    backtest_weights = replayed.company_weights[at]
    assert {names.get(m, m): w for m, w in published.items() if w > 0} == pytest.approx(
        {m: w for m, w in backtest_weights.items() if w > 0}, rel=1e-9
    )
    assert len(backtest_weights) >= 4  # the series methods and the pipeline weighed

    compared = 0
    for g, (kind, name) in enumerate(replayed.scopes.names):
        issued = _issued(months, kind, name)
        if issued is None:
            continue
        compared += 1
        for method, point in issued.method_points.items():
            expected = replayed.method_forecasts(names.get(method, method))[at][g]
            assert float(point) == pytest.approx(expected, abs=0.006), (kind, name, method)
        blend = replayed.method_forecasts(BLEND)[at][g]
        assert float(issued.figures.point) == pytest.approx(blend, abs=0.006), (kind, name)
    assert compared == len(replayed.scopes)  # company, both teams, every rep


def _issued(
    months: dict[Any, IssuedForecast], kind: str, name: str | None
) -> IssuedForecast | None:
    for scope, f in months.items():
        if scope.kind != kind:
            continue
        if kind == "company" or (kind == "team" and scope.id == name):
            return f
        if kind == "rep" and scope.id == str(person("rep", str(name))):
            return f
    return None
