"""The raw delivery archive's retention (``SALESOPS_INGEST_ARCHIVE_RETENTION_DAYS``):
housekeeping deletes processed deliveries received before it, keeps the newer ones, and keeps
what is not processed yet whatever its age."""

from __future__ import annotations

import orjson
import pytest

from salesops_ingest.bootstrap import create_app
from tests.ingest.integration.crm_support import (
    count,
    hs_event,
    ingest_db,
    ingest_settings,
    sign_v3,
)
from tests.support import AUTH, Isolation, api_event, eventually, running

pytestmark = pytest.mark.integration

CONTAINS = "SELECT count(*) FROM deliveries WHERE convert_from(body, 'UTF8') LIKE $1"


async def test_housekeeping_deletes_processed_deliveries_past_the_retention(
    iso: Isolation,
) -> None:
    settings = ingest_settings(iso, archive_retention_days=30, housekeeping_seconds=0.2)
    app = create_app(settings)
    runtime = app.state.runtime
    # Without its processor, a webhook's delivery stays pending (REST events are processed in
    # their own request).
    runtime._workers = [(n, run) for n, run in runtime._workers if not n.endswith("processor")]
    async with running(app, consumers=False) as ingest:
        for source_id in ("old-1", "old-2", "new-1"):
            event = api_event("lead.created", source_id)
            resp = await ingest.post("/v1/events", json=event, headers=AUTH)
            assert resp.status_code == 202, resp.text
        hook = orjson.dumps([hs_event("contact.creation", 77)])
        resp = await ingest.post("/webhooks/hubspot", content=hook, headers=sign_v3(hook))
        assert resp.status_code == 204, resp.text
        conn = await ingest_db(iso)
        try:
            await conn.execute(
                "UPDATE deliveries SET received_at = now() - interval '31 days' "
                "WHERE convert_from(body, 'UTF8') NOT LIKE '%new-1%'"
            )
        finally:
            await conn.close()

        async def pruned() -> bool:
            return await count(iso, CONTAINS, "%old-%") == 0

        await eventually(pruned, within=30)
        assert await count(iso, CONTAINS, "%new-1%") == 1
        pending = "SELECT count(*) FROM deliveries WHERE processed_at IS NULL"
        assert await count(iso, pending) == 1
        status = (await ingest.get("/v1/deliveries/status", headers=AUTH)).json()
        assert status["archived"] == 2, status
        assert status["pending"] == 1, status
