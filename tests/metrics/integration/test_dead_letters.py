"""Records metrics cannot apply go to ``<topic>.dlq`` with the reason, and consumption goes on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from salesops_common.envelope import Envelope
from salesops_common.events import Deal
from salesops_forecast.bootstrap import create_app as create_forecast
from salesops_forecast.config import ForecastSettings
from salesops_metrics.bootstrap import create_app
from salesops_metrics.config import MetricsSettings
from tests.support import AUTH, Isolation, eventually, publish, read_records, running

pytestmark = pytest.mark.integration
CRM = "salesops.crm.v1"


@pytest.fixture
async def metrics(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    settings = MetricsSettings(
        database=iso.database("metrics"),
        # a scrape shows everything committed before it: the tests scrape right after REST
        scrape_staleness_ms=0,
        **iso.settings_kwargs(),
    )
    async with running(create_app(settings)) as client:
        yield client


async def produce_raw(bootstrap: str, topic: str, *, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def won(deal_id: uuid.UUID) -> Envelope:
    deal = Deal(id=deal_id, source="api", source_id="D1", amount=Decimal("10"), currency="USD")
    return Envelope.of("deal.won", deal, source="/ingest/api/default")


async def test_poison_records_are_dead_lettered_and_later_events_still_count(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    deal_id = uuid.uuid4()
    key = str(deal_id).encode()  # one partition: the good event comes after the poison
    garbage = b"\x00\xff not a CloudEvent"
    await produce_raw(iso.bootstrap, iso.topic(CRM), key=key, value=garbage)
    no_deal_id = Envelope(
        type="deal.won",
        source="/ingest/api/default",
        subject=str(deal_id),
        data={"stage": "Won"},
        key=str(deal_id),
    )
    await publish(iso.bootstrap, iso.topic(CRM), [no_deal_id, won(deal_id)])

    async def counted() -> dict[str, int] | None:
        counts: dict[str, int] = (await metrics.get("/v1/kpis", headers=AUTH)).json()[
            "events_by_type"
        ]
        return counts or None

    assert await eventually(counted, within=60) == {"deal.won": 1}  # the invalid one is not
    dead = await read_records(
        iso.bootstrap, iso.topic(CRM + ".dlq"), until=lambda seen: len(seen) >= 2, within=60
    )
    headers = [dict(r.headers) for r in dead]
    assert all(h["x-dlq-origin"].decode().startswith(iso.topic(CRM) + "/") for h in headers)
    envelopes = [Envelope.from_record(r.key, r.value, list(r.headers)) for r in dead]
    by_kind = {
        e.type: (e, h["x-dlq-reason"].decode()) for e, h in zip(envelopes, headers, strict=True)
    }
    undecodable, reason = by_kind["unknown"]  # the runner wraps what it could not read
    assert reason.startswith("undecodable: missing CloudEvents headers")
    assert undecodable.data["raw"].endswith("not a CloudEvent")
    invalid, reason = by_kind["deal.won"]
    assert invalid.id == no_deal_id.id
    assert "ValidationError" in reason
    assert (await metrics.get("/v1/kpis", params={"kpi": "deals_won"}, headers=AUTH)).json()[
        "values"
    ][0]["value"] == 1

    async def dead_letters() -> bool:  # metrics reads the .dlq topics too
        resp = await metrics.get("/v1/kpis", params={"kpi": "dead_letters"}, headers=AUTH)
        return bool(resp.json()["values"][0]["value"] == 2)

    await eventually(dead_letters, within=30)
    assert "salesops_metrics_dead_letters_total 2.0" in (await metrics.get("/metrics")).text


async def dead_letters_read(metrics: httpx.AsyncClient, topic: str) -> float:
    """How many records metrics' dead-letter consumer took from ``topic`` (applied, or
    skipped as a copy of one it had)."""
    text = (await metrics.get("/metrics")).text
    samples = [
        s
        for family in text_string_to_metric_families(text)
        if family.name == "salesops_metrics_consumer_events"
        for s in family.samples
        if s.name.endswith("_total")
    ]
    return sum(
        s.value
        for s in samples
        if s.labels["topic"] == topic and s.labels["outcome"] in ("applied", "duplicate")
    )


async def test_a_record_no_service_can_read_is_one_dead_letter_however_many_consume_it(
    metrics: httpx.AsyncClient, iso: Isolation
) -> None:
    settings = ForecastSettings(database=iso.database("forecast"), **iso.settings_kwargs())
    async with running(create_forecast(settings)):  # a second service consuming the CRM topic
        await produce_raw(iso.bootstrap, iso.topic(CRM), key=b"k", value=b"\x00 not an event")
        dead = await read_records(
            iso.bootstrap, iso.topic(CRM + ".dlq"), until=lambda seen: len(seen) >= 2, within=90
        )
    consumers = {dict(r.headers)["x-dlq-consumer"] for r in dead}
    assert consumers == {b"metrics.all", b"forecast.crm"}, consumers
    origins = {dict(r.headers)["x-dlq-origin"] for r in dead}
    assert len(origins) == 1  # one record, dead-lettered by each
    ids = {Envelope.from_record(r.key, r.value, list(r.headers)).id for r in dead}
    assert len(ids) == 1, "each service gave the record an id of its own"

    async def both_read() -> bool:
        return await dead_letters_read(metrics, CRM + ".dlq") >= 2

    await eventually(both_read, within=60)
    resp = await metrics.get("/v1/kpis", params={"kpi": "dead_letters"}, headers=AUTH)
    assert resp.json()["values"][0]["value"] == 1
    assert "salesops_metrics_dead_letters_total 1.0" in (await metrics.get("/metrics")).text
