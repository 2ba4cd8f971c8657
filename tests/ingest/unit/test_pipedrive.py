"""Pipedrive connector: HTTP Basic credentials, webhook events as records, and the API adapter
against a local Pipedrive (tests/ingest/fakes/pipedrive_api.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from salesops_common.http import ApiError
from salesops_ingest.connectors.pipedrive import PipedriveApi, PipedriveAuth, check_body, records
from salesops_ingest.domain.mapping import load_mappings
from salesops_ingest.domain.records import CrmApiError, DeadItem, SourceRecord
from tests.ingest.fakes.pipedrive_api import FakePipedrive

pytestmark = pytest.mark.unit

TOKEN = "pd-test-token"
COMPANY = 7712345
LEAD_ID = "adf21080-0e10-11eb-879b-05d71fb426ec"


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {encoded}"}


# --------------------------------------------------------------------------------------------
# HTTP Basic
# --------------------------------------------------------------------------------------------


def test_the_configured_credentials_pass() -> None:
    auth = PipedriveAuth("pipedrive", "s3cret:with-colon")

    auth.verify(basic("pipedrive", "s3cret:with-colon"))
    auth.verify({"Authorization": basic("pipedrive", "s3cret:with-colon")["authorization"]})


@pytest.mark.parametrize(
    "headers",
    [
        basic("pipedrive", "wrong"),
        basic("someone", "s3cret"),
        basic("", ""),
        {},
        {"authorization": "Bearer s3cret"},
        {"authorization": "Basic !!not-base64!!"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"authorization": "Basic"},
    ],
    ids=[
        "bad-password",
        "bad-user",
        "empty",
        "missing",
        "bearer",
        "not-base64",
        "no-colon",
        "bare",
    ],
)
def test_other_credentials_are_unauthenticated(headers: dict[str, str]) -> None:
    auth = PipedriveAuth("pipedrive", "s3cret")

    with pytest.raises(ApiError) as caught:
        auth.verify(headers)

    assert caught.value.status == 401
    assert caught.value.headers == {"WWW-Authenticate": 'Basic realm="salesops"'}


def test_credentials_must_be_configured() -> None:
    with pytest.raises(ValueError, match="user and a password"):
        PipedriveAuth("pipedrive", "")


# --------------------------------------------------------------------------------------------
# Webhook events
# --------------------------------------------------------------------------------------------


def event(
    entity: str,
    action: str,
    entity_id: int | str,
    data: dict[str, Any] | None,
    *,
    timestamp: str | int = "2024-05-01T10:15:30.123Z",
    delivery: str = "4b3a1d1e-6a5c-4f0e-9d0a-2f1c3b4a5d6e",
    previous: dict[str, Any] | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "meta": {
                "id": delivery,
                "action": action,
                "entity": entity,
                "entity_id": str(entity_id),
                "company_id": str(COMPANY),
                "correlation_id": "c6a1b6d4-2f61-4f5e-8c38-0e6c6a2f9f10",
                "timestamp": timestamp,
                "change_source": "app",
                "attempt": 1,
                "version": "2.0",
                "user_id": "123",
                "is_bulk_edit": False,
                "type": "general",
            },
            "data": data,
            "previous": previous,
        }
    )


PERSON = {
    "id": 42,
    "name": "Jane Doe",
    "first_name": "Jane",
    "last_name": "Doe",
    "owner_id": 123,
    "org_id": 9,
    "emails": [
        {"value": "jane@home.example", "primary": False, "label": "home"},
        {"value": "Jane.Doe@Acme.example", "primary": True, "label": "work"},
    ],
    "phones": [{"value": "+49 30 1234567", "primary": False, "label": "work"}],
    "add_time": "2024-04-30T08:00:00Z",
    "update_time": "2024-05-01T10:15:30Z",
    "custom_fields": {
        "d4de1c1518b4531717c676029a45911c340390a6": {"type": "varchar", "value": "EMEA"}
    },
}


def only(body: bytes) -> SourceRecord:
    (record,) = records(body)
    assert isinstance(record, SourceRecord), record
    return record


def test_a_new_person_is_a_create_with_flat_contact_details() -> None:
    record = only(event("person", "create", 42, PERSON))

    assert (record.source, record.tenant, record.object_type) == (
        "pipedrive",
        str(COMPANY),
        "person",
    )
    assert (record.source_id, record.action, record.origin) == ("42", "create", "app")
    assert record.delivery_key == f"pd:{COMPANY}:4b3a1d1e-6a5c-4f0e-9d0a-2f1c3b4a5d6e"
    assert record.occurred_at == datetime(2024, 5, 1, 10, 15, 30, 123000, tzinfo=UTC)
    assert record.properties["email"] == "Jane.Doe@Acme.example"  # the primary one
    assert record.properties["phone"] == "+49 30 1234567"  # no primary: the first
    assert record.properties["d4de1c1518b4531717c676029a45911c340390a6"] == "EMEA"


def test_a_change_carries_the_full_current_record() -> None:
    record = only(event("person", "change", 42, PERSON, previous={"last_name": "Do"}))

    assert record.action == "update"
    assert record.properties["last_name"] == "Doe"
    assert record.properties["first_name"] == "Jane"


def test_the_shipped_mapping_reads_a_person() -> None:
    mapped = load_mappings()["pipedrive"].apply(only(event("person", "create", 42, PERSON)))

    assert mapped.kind == "lead"
    assert mapped.fields["email"] == "Jane.Doe@Acme.example"
    assert (mapped.fields["owner_source_id"], mapped.fields["account_source_id"]) == ("123", "9")


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2024-05-01T10:15:30Z", datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)),
        ("2024-05-01T12:15:30+02:00", datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)),
        (1714558530, datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)),
        (1714558530250, datetime(2024, 5, 1, 10, 15, 30, 250000, tzinfo=UTC)),
        ("1714558530", datetime(2024, 5, 1, 10, 15, 30, tzinfo=UTC)),
    ],
    ids=["iso-z", "iso-offset", "epoch-s", "epoch-ms", "digit-string"],
)
def test_timestamps_are_iso_or_epoch(timestamp: str | int, expected: datetime) -> None:
    user = {"id": 123, "name": "Ann Rep", "email": "ann@acme.example", "active_flag": True}

    record = only(event("user", "change", 123, user, timestamp=timestamp))

    assert record.occurred_at == expected


def test_a_lead_keeps_its_uuid_and_flattens_its_value() -> None:
    lead = {
        "id": LEAD_ID,
        "title": "Acme lead",
        "owner_id": 123,
        "person_id": 42,
        "organization_id": 9,
        "value": {"amount": 5000, "currency": "EUR"},
        "source_name": "Web forms",
        "add_time": "2024-05-01T10:00:00.000Z",
    }

    record = only(event("lead", "create", LEAD_ID, lead))

    assert record.source_id == LEAD_ID
    assert (record.properties["value_amount"], record.properties["value_currency"]) == (5000, "EUR")
    assert "value" not in record.properties
    mapped = load_mappings()["pipedrive"].apply(record)
    assert (mapped.fields["currency"], mapped.fields["lead_source"]) == ("EUR", "Web forms")


@pytest.mark.parametrize(
    ("status", "stage_id", "stage", "outcome"),
    [("open", 3, "Engaging", None), ("won", 3, "Won", "won"), ("lost", 2, "Lost", "lost")],
)
def test_a_deal_stage_closes_by_its_status(
    status: str, stage_id: int, stage: str, outcome: str | None
) -> None:
    deal = {
        "id": 77,
        "title": "Acme - 500 seats",
        "value": 125000,
        "currency": "EUR",
        "status": status,
        "stage_id": stage_id,
        "owner_id": 123,
        "org_id": 9,
        "person_id": 42,
    }

    record = only(event("deal", "change", 77, deal))
    mapped = load_mappings()["pipedrive"].apply(record)

    assert (mapped.fields["stage"], mapped.outcome) == (stage, outcome)
    assert str(mapped.fields["amount"]) == "125000"


def test_an_activity_occurs_at_its_due_date_and_time() -> None:
    activity = {
        "id": 5,
        "subject": "Intro call",
        "type": "call",
        "owner_id": 123,
        "person_id": 42,
        "deal_id": 77,
        "due_date": "2024-05-02",
        "due_time": "14:30",
    }

    record = only(event("activity", "create", 5, activity))
    mapped = load_mappings()["pipedrive"].apply(record)

    assert record.properties["due_at"] == "2024-05-02T14:30:00Z"
    assert (mapped.fields["type"], mapped.fields["deal_source_id"]) == ("call", "77")


def test_a_deletion_carries_no_properties() -> None:
    record = only(event("person", "delete", 42, None, previous=PERSON))

    assert (record.action, record.source_id, dict(record.properties)) == ("delete", "42", {})


def test_an_unknown_entity_is_a_dead_item() -> None:
    (dead,) = records(event("product", "create", 3, {"id": 3, "name": "Seats"}))

    assert isinstance(dead, DeadItem)
    assert "product" in dead.reason
    assert dead.delivery_key == f"pd:{COMPANY}:4b3a1d1e-6a5c-4f0e-9d0a-2f1c3b4a5d6e"


def test_a_webhooks_v1_event_is_read_too() -> None:
    body = orjson.dumps(
        {
            "v": 1,
            "event": "updated.deal",
            "meta": {
                "action": "updated",
                "object": "deal",
                "id": 77,
                "company_id": COMPANY,
                "timestamp": 1714558530,
                "timestamp_micro": 1714558530123456,
                "change_source": "api",
            },
            "current": {"id": 77, "title": "Acme", "user_id": {"id": 123, "value": 123}},
            "previous": {"title": "Acm"},
        }
    )

    record = only(body)

    assert (record.object_type, record.source_id, record.action) == ("deal", "77", "update")
    assert record.delivery_key == f"pd1:{COMPANY}:deal:77:updated:1714558530123456"
    assert record.properties["owner_id"] == "123"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"data": {}}',
        b'{"meta": []}',
        b'{"meta": {"id": "x", "entity": "deal"}}',
        b'{"meta": {"id": "x", "action": "create"}}',
        b'{"meta": {"action": "create", "entity": "deal"}}',
        b'{"meta": {"id": "x", "action": "create", "entity": "deal"}, "data": "text"}',
    ],
    ids=[
        "not-json",
        "array",
        "no-meta",
        "meta-not-object",
        "no-action",
        "no-entity",
        "no-id",
        "data-not-object",
    ],
)
def test_a_body_that_is_no_event_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        check_body(body)
    assert caught.value.status == 400


# --------------------------------------------------------------------------------------------
# The API, against a local Pipedrive
# --------------------------------------------------------------------------------------------


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def pd() -> AsyncIterator[FakePipedrive]:
    async with FakePipedrive(TOKEN) as server:
        yield server


def api(pd: FakePipedrive, sleeps: Sleeps | None = None, *, page_size: int = 500) -> PipedriveApi:
    return PipedriveApi(
        pd.base_url,
        TOKEN,
        page_size=page_size,
        backoff_s=0.01,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


async def test_fetch_reads_v2_records_and_v1_leads_and_users(pd: FakePipedrive) -> None:
    pd.put("deal", 77, title="Acme", status="won", stage_id=4, value=100, currency="EUR")
    pd.put("lead", LEAD_ID, title="Acme lead", value={"amount": 10, "currency": "USD"})
    pd.put("user", 123, name="Ann Rep", email="ann@acme.example", active_flag=True)

    async with api(pd) as client:
        deal = await client.fetch(str(COMPANY), "deal", "77")
        lead = await client.fetch(str(COMPANY), "lead", LEAD_ID)
        user = await client.fetch(str(COMPANY), "user", "123")

    assert deal is not None
    assert deal.action == "create"
    assert deal.properties["salesops_stage"] == "status:won"
    assert deal.delivery_key == "fetch:deal:77:2024-05-01T09:00:01Z"
    assert lead is not None
    assert lead.properties["value_currency"] == "USD"
    assert user is not None
    assert user.occurred_at == datetime(2024, 5, 1, 9, 0, 3, tzinfo=UTC)
    assert pd.paths() == ["/api/v2/deals/77", f"/api/v1/leads/{LEAD_ID}", "/api/v1/users/123"]
    assert all(r.headers["x-api-token"] == TOKEN and not r.query for r in pd.requests)


async def test_fetch_of_a_gone_record_is_none(pd: FakePipedrive) -> None:
    async with api(pd) as client:
        assert await client.fetch(str(COMPANY), "person", "404") is None


async def test_list_changed_follows_the_cursor_and_returns_the_newest_time(
    pd: FakePipedrive,
) -> None:
    for n in range(5):
        pd.put("person", n + 1, name=f"P{n}", emails=[{"value": f"p{n}@x.example"}])

    async with api(pd, page_size=2) as client:
        first, cursor = await client.list_changed(str(COMPANY), "person", None)
        again, unchanged = await client.list_changed(str(COMPANY), "person", cursor)
        pd.put("person", 9, name="New")
        latest, moved = await client.list_changed(str(COMPANY), "person", cursor)

    assert [r.source_id for r in first] == ["1", "2", "3", "4", "5"]
    assert first[0].properties["email"] == "p0@x.example"
    assert all(r.action == "update" for r in first)
    assert cursor == "2024-05-01T09:00:05Z"
    assert ([r.source_id for r in again], unchanged) == (["5"], None)  # inclusive bound
    assert ([r.source_id for r in latest], moved) == (["5", "9"], "2024-05-01T09:00:06Z")
    listings = [r.query for r in pd.requests]
    assert "updated_since" not in listings[0]
    assert listings[0] | {"cursor": "c2"} == listings[1]
    assert listings[3]["updated_since"] == "2024-05-01T09:00:05Z"


async def test_list_changed_reads_leads_newest_first_until_the_cursor(pd: FakePipedrive) -> None:
    for n in range(5):
        pd.put("lead", f"{n}df21080-0e10-11eb-879b-05d71fb426ec", title=f"L{n}")

    async with api(pd, page_size=2) as client:
        found, cursor = await client.list_changed(str(COMPANY), "lead", "2024-05-01T09:00:03Z")

    assert [r.properties["title"] for r in found] == ["L2", "L3", "L4"]
    assert cursor == "2024-05-01T09:00:05Z"
    assert [r.query["sort"] for r in pd.requests] == ["update_time DESC"] * 2


async def test_set_owner_writes_owner_id_on_leads_and_persons(pd: FakePipedrive) -> None:
    pd.put("user", 123, name="Ann Rep")
    pd.put("lead", LEAD_ID, title="Acme lead", owner_id=1)
    pd.put("person", 42, name="Jane Doe", owner_id=1)

    async with api(pd) as client:
        await client.set_owner(str(COMPANY), "lead", LEAD_ID, "123")
        await client.set_owner(str(COMPANY), "person", "42", "123")

    assert pd.records[("lead", LEAD_ID)]["owner_id"] == 123
    assert pd.records[("person", "42")]["owner_id"] == 123
    patches = [(r.path, r.body) for r in pd.requests]
    assert patches == [
        (f"/api/v1/leads/{LEAD_ID}", {"owner_id": 123}),
        ("/api/v2/persons/42", {"owner_id": 123}),
    ]


async def test_a_refused_owner_is_not_retried(pd: FakePipedrive) -> None:
    pd.put("person", 42, name="Jane Doe", owner_id=1)

    async with api(pd) as client:
        with pytest.raises(CrmApiError) as unknown_user:
            await client.set_owner(str(COMPANY), "person", "42", "999")
        with pytest.raises(CrmApiError) as not_a_number:
            await client.set_owner(str(COMPANY), "person", "42", "ann@acme.example")

    assert (unknown_user.value.retryable, unknown_user.value.status) == (False, 400)
    assert not_a_number.value.retryable is False
    assert len(pd.requests) == 1


async def test_throttling_and_outages_are_retried(pd: FakePipedrive) -> None:
    pd.put("deal", 77, title="Acme")
    pd.fail_next(1, 429, retry_after=2)
    pd.fail_next(1, 502)
    sleeps = Sleeps()

    async with api(pd, sleeps) as client:
        deal = await client.fetch(str(COMPANY), "deal", "77")

    assert deal is not None
    assert sleeps == [2.0, 0.02]


async def test_a_wrong_api_token_is_not_retried(pd: FakePipedrive) -> None:
    async with PipedriveApi(pd.base_url, "wrong", backoff_s=0.01, sleep=Sleeps()) as client:
        with pytest.raises(CrmApiError) as caught:
            await client.fetch(str(COMPANY), "deal", "77")

    assert (caught.value.retryable, caught.value.status) == (False, 401)
    assert len(pd.requests) == 1
