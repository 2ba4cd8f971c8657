"""Rate limits, data-quality rates and the bounded dedupe window, through the real app."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from salesops_ingest.adapters import state
from tests.ingest.integration.crm_support import count, ingest_app, ingest_db
from tests.support import AUTH, Isolation, api_event

pytestmark = pytest.mark.integration

BASIC = {"Authorization": "Basic " + base64.b64encode(b"pd:pw").decode()}


def person(n: int) -> bytes:
    return orjson.dumps(
        {
            "meta": {
                "id": str(uuid.uuid4()),
                "action": "create",
                "entity": "person",
                "entity_id": str(n),
                "company_id": "1",
                "timestamp": "2026-11-01T10:00:00Z",
                "version": "2.0",
            },
            "data": {"id": n, "name": f"P {n}"},
            "previous": None,
        }
    )


async def test_a_source_over_its_rate_gets_429_with_retry_after_and_nothing_stored(
    iso: Isolation,
) -> None:
    # One request per 100 s: the first passes, the rest are over the rate however slowly the
    # machine answers (the bucket's arithmetic is unit-tested with a clock of its own).
    async with ingest_app(
        iso,
        consumers=False,
        pipedrive_user="pd",
        pipedrive_password="pw",
        rate_limit="pipedrive:0.01,0",
    ) as ingest:
        codes = [
            (await ingest.post("/webhooks/pipedrive", content=person(n), headers=BASIC))
            for n in range(4)
        ]
        assert [c.status_code for c in codes] == [200, 429, 429, 429]
        limited = codes[1]
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        assert await count(iso, "SELECT count(*) FROM deliveries") == 1
        # Other sources have no limit ("0" for the rest).
        events = [api_event("lead.created", f"R{n}") for n in range(5)]
        for event in events:
            assert (await ingest.post("/v1/events", json=event, headers=AUTH)).status_code == 202


async def test_data_quality_rates_by_source(iso: Isolation) -> None:
    async with ingest_app(iso, consumers=False) as ingest:
        leads = [
            api_event(
                "lead.created",
                "Q1",
                {"email": "ok@acme.example", "last_name": "A", "company": "Acme"},
            ),
            api_event(
                "lead.created", "Q2", {"email": "not-an-email", "last_name": "B", "company": "B"}
            ),
            api_event("lead.created", "Q3", {"first_name": "No", "company": "Contact"}),
            api_event("lead.created", "Q4", {"email": "OK@acme.example", "last_name": "A"}),
        ]
        answer = await ingest.post("/v1/events", json=leads, headers=AUTH)
        assert [r["status"] for r in answer.json()["results"]] == [
            "accepted",
            "accepted",
            "accepted",
            "merged",
        ]
        quality = (await ingest.get("/v1/quality", headers=AUTH)).json()["sources"]["api"]
        assert quality["duplicate_rate"] == pytest.approx(1 / 4)
        assert quality["invalid_email_rate"] == pytest.approx(1 / 3)
        # Q2's e-mail was invalid (cleared) and it has no phone; Q3 has no way to reach it
        # nor a last name. Q4's company domain comes from its e-mail.
        assert quality["missing_field_rate"] == pytest.approx(2 / 4)
        metrics = (await ingest.get("/metrics")).text
        assert (
            'salesops_ingest_data_quality_ratio{rate="duplicate_rate",source="api"} 0.25' in metrics
        )


async def test_the_dedupe_window_is_pruned_so_its_store_stays_bounded(iso: Isolation) -> None:
    async with ingest_app(iso, consumers=False) as ingest:
        event = api_event("lead.created", "W1", source_event_id="w-1")
        await ingest.post("/v1/events", json=event, headers=AUTH)
        again = await ingest.post("/v1/events", json=event, headers=AUTH)
        assert again.json()["duplicates"] == 1
        conn = await ingest_db(iso)
        try:
            await conn.execute("UPDATE seen_deliveries SET seen_at = now() - interval '100 hours'")
            pruned = await state.prune_seen(
                conn, older_than=datetime.now(UTC) - timedelta(hours=96)
            )
            assert pruned == 1
            assert await conn.fetchval("SELECT count(*) FROM seen_deliveries") == 0
        finally:
            await conn.close()
        # Past the window a delivery is no longer known as one; its record state still makes
        # the late copy change nothing.
        late = await ingest.post("/v1/events", json=event, headers=AUTH)
        assert late.json()["results"][0]["status"] == "unchanged"
