"""The demo's sample (``salesops demo``) through the real ingest: every kind it sends, as
CSV-sourced REST events, is accepted."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from salesops_cli.maven import load_maven_events
from salesops_ingest.bootstrap import create_app
from salesops_ingest.config import IngestSettings
from tests.support import AUTH, Isolation, running

pytestmark = pytest.mark.integration


@pytest.fixture
async def ingest(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestSettings(database=iso.database("ingest"), **iso.settings_kwargs())
    async with running(create_app(settings)) as client:
        yield client


async def test_every_kind_the_demo_sends_is_accepted(ingest: httpx.AsyncClient) -> None:
    events = load_maven_events()
    sample: list[dict[str, object]] = []
    wanted = Counter[str]()
    for event in events:  # the first few of each type, in the demo's order
        if wanted[str(event["type"])] < 5:
            wanted[str(event["type"])] += 1
            sample.append(dict(event))
    assert {"rep.created", "account.created", "deal.created", "lead.created"} <= set(wanted)

    resp = await ingest.post("/v1/events", json=sample, headers=AUTH)
    assert resp.status_code == 202, resp.text
    statuses = Counter(r["status"] for r in resp.json()["results"])
    assert statuses["accepted"] >= len({e["type"] for e in sample}), statuses
    assert set(statuses) <= {"accepted", "merged", "unchanged"}, statuses
