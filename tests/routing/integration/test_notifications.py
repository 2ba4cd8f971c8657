"""Team notifications on the real PostgreSQL and broker: assignments and missed SLAs posted
to each team's Slack-compatible incoming webhook (a local receiver here), retried with
backoff, never in routing's way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from salesops_routing.bootstrap import create_app
from tests.ingest.fakes.salesforce_api import LocalApiServer
from tests.routing.integration.helpers import (
    assignments,
    crm,
    hire,
    metric,
    new_rep,
    put_on_crm,
)
from tests.routing.integration.sla_support import (
    TEAM,
    fast_settings,
    german_lead,
    put_ruleset,
    territory,
)
from tests.support import AUTH, Isolation, eventually, running

pytestmark = pytest.mark.integration

BASE = "/v1/routing/notifications"


@dataclass
class SlackReceiver(LocalApiServer):
    """Incoming webhooks at ``/hooks/<channel>``, answering as Slack does (200 ``ok``)."""

    delivered: list[tuple[str, dict[str, Any]]] = field(default_factory=list, init=False)

    def build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{channel}")
        async def hook(channel: str, body: dict[str, Any]) -> PlainTextResponse:
            self.delivered.append((channel, body))
            return PlainTextResponse("ok")

        return app

    def url(self, channel: str) -> str:
        return f"{self.base_url}/hooks/{channel}-s3cret"

    def texts(self, channel: str) -> list[str]:
        return [body["text"] for name, body in self.delivered if name == f"{channel}-s3cret"]

    def down(self) -> None:
        self.fail_next(100_000, 503)

    def up(self) -> None:
        self._failures.clear()


@pytest.fixture
async def receiver() -> AsyncIterator[SlackReceiver]:
    async with SlackReceiver() as server:
        yield server


@pytest.fixture
async def routing(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(fast_settings(iso, notify_max_attempts=1000))) as client:
        yield client


@pytest.fixture
async def admin(iso: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """Routing without its CRM consumer, for the tests of the channels' REST API alone."""
    async with running(create_app(fast_settings(iso)), consumers=False) as client:
        yield client


async def put_channel(
    client: httpx.AsyncClient, team: str, url: str, events: list[str] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    return await client.put(f"{BASE}/channels/{team}", json=body, headers=AUTH)


async def deliveries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get(BASE, params=params, headers=AUTH)
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["notifications"]
    return found


async def settled(client: httpx.AsyncClient, count: int, state: str) -> list[dict[str, Any]]:
    """Wait until ``count`` notifications are in ``state``."""

    async def enough() -> list[dict[str, Any]] | None:
        found = await deliveries(client, state=state)
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = await eventually(enough, within=60, interval=0.2)
    return result


async def counted(client: httpx.AsyncClient, **expected: int) -> None:
    """The delivery counter reaches these values (it moves just after the row's commit)."""

    async def reached() -> dict[str, float] | None:
        seen = {
            result: await metric(client, "salesops_routing_notifications_total", result=result)
            for result in expected
        }
        return seen if seen == expected else None

    await eventually(reached, within=60)


async def test_assignments_and_missed_slas_reach_the_teams_channels_in_slack_format(
    routing: httpx.AsyncClient, iso: Isolation, receiver: SlackReceiver
) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    await hire(iso, routing, reps)
    assert (await put_channel(routing, TEAM, receiver.url("emea"))).status_code == 200
    await put_channel(routing, "*", receiver.url("managers"), ["lead.sla_breached"])
    await put_channel(routing, "apac-sales", receiver.url("apac"))
    await put_ruleset(routing, territory(reps, first_touch_minutes=0.02, max_reassignments=1))
    lead = german_lead("L1")

    await put_on_crm(iso, [crm("lead.created", lead)])

    # Assigned, missed, reassigned, missed again (the SLA allows one reassignment).
    await settled(routing, 6, "sent")
    emea = receiver.texts("emea")
    assert len(emea) == 4
    assert "assigned to *Rep R" in emea[0]
    assert emea[1].startswith(f"First-touch SLA missed on lead `{lead.id}` (territory *emea*)")
    assert "reassigned to *Rep R" in emea[2]
    assert emea[3].startswith("First-touch SLA missed")
    assert all(str(lead.id) in text for text in emea)
    assert receiver.texts("managers") == [emea[1], emea[3]]
    assert receiver.texts("apac") == []
    for _, body in receiver.delivered:
        assert body["blocks"][0] == {
            "type": "section",
            "text": {"type": "mrkdwn", "text": body["text"]},
        }
        wire = orjson.dumps(body).decode()
        assert "prospect.example" not in wire  # the lead's e-mail
        assert "1234567" not in wire  # and phone
    shown = await deliveries(routing, state="sent", team=TEAM)
    assert [n["kind"] for n in reversed(shown)] == [
        "lead.assigned",
        "lead.sla_breached",
        "lead.reassigned",
        "lead.sla_breached",
    ]
    assert {n["attempts"] for n in shown} == {1}
    assert shown[-1]["text"] == emea[0]
    await counted(routing, sent=6)


async def test_a_receiver_failing_twice_gets_the_message_on_the_third_attempt(
    routing: httpx.AsyncClient, iso: Isolation, receiver: SlackReceiver
) -> None:
    rep = new_rep("R1")
    await hire(iso, routing, [rep])
    await put_channel(routing, TEAM, receiver.url("emea"))
    await put_ruleset(routing, territory([rep], first_touch_minutes=None))
    receiver.fail_next(2, 500)

    await put_on_crm(iso, [crm("lead.created", german_lead("L1"))])

    [sent] = await settled(routing, 1, "sent")
    assert sent["attempts"] == 3
    assert sent["last_error"].startswith("HTTP 500")
    assert "s3cret" not in sent["last_error"]
    assert len(receiver.paths("POST")) == 3
    assert len(receiver.texts("emea")) == 1
    await counted(routing, retried=2, sent=1)


async def test_routing_keeps_assigning_while_the_receiver_is_down(
    routing: httpx.AsyncClient, iso: Isolation, receiver: SlackReceiver
) -> None:
    reps = [new_rep("R1"), new_rep("R2")]
    await hire(iso, routing, reps)
    await put_channel(routing, TEAM, receiver.url("emea"))
    await put_ruleset(routing, territory(reps, first_touch_minutes=None))
    receiver.down()
    leads = [german_lead(f"L{i}") for i in range(5)]

    await put_on_crm(iso, [crm("lead.created", lead) for lead in leads])

    shown = await assignments(routing, leads)
    assert {a["rep_id"] for a in shown} == {str(r.id) for r in reps}

    async def retrying() -> bool:
        waiting = await deliveries(routing, state="pending")
        return len(waiting) == 5 and any(n["attempts"] >= 2 for n in waiting)

    await eventually(retrying, within=60, interval=0.2)
    assert receiver.texts("emea") == []

    receiver.up()

    await settled(routing, 5, "sent")
    texts = receiver.texts("emea")
    assert len(texts) == 5
    assert all(sum(str(lead.id) in text for text in texts) == 1 for lead in leads)


async def test_channels_are_managed_over_rest_and_their_urls_never_shown(
    admin: httpx.AsyncClient,
) -> None:
    url = "https://hooks.slack.example/services/T000/B000/XXXXSECRET"

    created = await put_channel(admin, TEAM, url)

    assert created.status_code == 200, created.text
    assert created.json()["url"] == "https://hooks.slack.example/…"
    assert created.json()["events"] == ["lead.assigned", "lead.reassigned", "lead.sla_breached"]
    changed = await put_channel(admin, TEAM, url, ["lead.sla_breached", "lead.sla_breached"])
    assert changed.json()["events"] == ["lead.sla_breached"]
    listed = await admin.get(f"{BASE}/channels", headers=AUTH)
    assert listed.status_code == 200
    assert [c["team"] for c in listed.json()["channels"]] == [TEAM]
    assert "XXXXSECRET" not in listed.text
    assert (await admin.delete(f"{BASE}/channels/{TEAM}", headers=AUTH)).status_code == 204
    missing = await admin.delete(f"{BASE}/channels/{TEAM}", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await admin.get(f"{BASE}/channels", headers=AUTH)).json()["channels"] == []


@pytest.mark.parametrize(
    ("team", "body"),
    [
        (TEAM, {"url": "ftp://hooks.example/x"}),
        (TEAM, {"url": "not a url"}),
        (TEAM, {"url": "https:///no-host"}),
        (TEAM, {"url": "https://hooks.example/x", "events": ["lead.created"]}),
        (TEAM, {"url": "https://hooks.example/x", "events": []}),
        ("bad team!", {"url": "https://hooks.example/x"}),
        ("x" * 101, {"url": "https://hooks.example/x"}),
    ],
)
async def test_an_invalid_channel_is_refused(
    admin: httpx.AsyncClient, team: str, body: dict[str, Any]
) -> None:
    resp = await admin.put(f"{BASE}/channels/{team}", json=body, headers=AUTH)

    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid"


async def test_notification_endpoints_need_the_token(admin: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", BASE),
        ("GET", f"{BASE}/channels"),
        ("PUT", f"{BASE}/channels/{TEAM}"),
        ("DELETE", f"{BASE}/channels/{TEAM}"),
        ("POST", f"{BASE}/1/retry"),
    ):
        resp = await admin.request(method, path, json={"url": "https://hooks.example/x"})
        assert resp.status_code == 401, (method, path)


async def test_a_notification_the_receiver_refuses_fails_and_can_be_retried(
    routing: httpx.AsyncClient, iso: Isolation, receiver: SlackReceiver
) -> None:
    rep = new_rep("R1")
    await hire(iso, routing, [rep])
    await put_channel(routing, TEAM, receiver.url("emea"))
    await put_ruleset(routing, territory([rep], first_touch_minutes=None))
    receiver.fail_next(1, 404)  # Slack's answer for a removed webhook: no point retrying

    await put_on_crm(iso, [crm("lead.created", german_lead("L1"))])

    [failed] = await settled(routing, 1, "failed")
    assert failed["attempts"] == 1
    assert failed["last_error"].startswith("HTTP 404")
    retried = await routing.post(f"{BASE}/{failed['id']}/retry", headers=AUTH)
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "pending"
    [sent] = await settled(routing, 1, "sent")
    assert sent["id"] == failed["id"]
    assert len(receiver.texts("emea")) == 1
    again = await routing.post(f"{BASE}/{failed['id']}/retry", headers=AUTH)
    assert again.status_code == 409
    unknown = await routing.post(f"{BASE}/999999/retry", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    bad_state = await routing.get(BASE, params={"state": "lost"}, headers=AUTH)
    assert bad_state.status_code == 422
