"""HubSpot connector: signatures, shape check, records, and the CRM API adapter against a fake
HubSpot served over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from salesops_common.http import ApiError
from salesops_ingest.connectors.hubspot import (
    HubSpotApi,
    HubSpotAuth,
    check_body,
    load_fetch_properties,
    parse_secrets,
    records,
)
from salesops_ingest.domain.records import CrmApiError, DeadItem, SourceRecord
from tests.ingest.fakes.hubspot_api import FakeHubSpot

pytestmark = pytest.mark.unit

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
NOW_MS = 1_700_000_000_000
URL = "https://hooks.example.com/v1/webhooks/hubspot"
BODY = orjson.dumps(
    [
        {
            "eventId": 1,
            "subscriptionId": 12345,
            "portalId": 62515,
            "appId": 54321,
            "occurredAt": 1564113600000,
            "subscriptionType": "contact.creation",
            "attemptNumber": 0,
            "objectId": 123,
            "changeSource": "CRM",
        }
    ]
)


# -- signatures, built here from the documented formulas -------------------------------------


def v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def v3(secret: str, method: str, uri: str, body: bytes, timestamp: int) -> str:
    msg = method.encode() + uri.encode() + body + str(timestamp).encode()
    return base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()


def v1_headers(signature: str) -> dict[str, str]:
    return {"x-hubspot-signature": signature, "x-hubspot-signature-version": "v1"}


def v2_headers(signature: str) -> dict[str, str]:
    return {"x-hubspot-signature": signature, "x-hubspot-signature-version": "v2"}


def v3_headers(signature: str, timestamp: int) -> dict[str, str]:
    return {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": str(timestamp)}


def auth(secrets: dict[str | None, str] | None = None, base: str | None = None) -> HubSpotAuth:
    return HubSpotAuth(secrets or {None: SECRET}, base)


def refused(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == 401
    return caught.value


def test_v1_documented_example() -> None:
    # HubSpot's documented v1 example (secret + body -> this hash).
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
        b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
    )
    expected = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    assert v1(SECRET, body) == expected
    auth().verify("POST", URL, v1_headers(expected), body, NOW_MS)


def test_v2_documented_example() -> None:
    expected = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    uri = "https://www.example.com/webhook_uri"
    assert v2(SECRET, "GET", uri, b"") == expected
    auth().verify("GET", uri, v2_headers(expected), b"", NOW_MS)


def test_v1_and_v2_good_and_bad() -> None:
    a = auth()
    a.verify("POST", URL, v1_headers(v1(SECRET, BODY)), BODY, NOW_MS)
    a.verify("POST", URL, v1_headers(v1(SECRET, BODY).upper()), BODY, NOW_MS)
    a.verify("POST", URL, v2_headers(v2(SECRET, "POST", URL, BODY)), BODY, NOW_MS)
    refused(lambda: a.verify("POST", URL, v1_headers(v1("other", BODY)), BODY, NOW_MS))
    refused(lambda: a.verify("POST", URL, v1_headers(v1(SECRET, BODY)), BODY + b" ", NOW_MS))
    wrong_uri = v2(SECRET, "POST", URL + "?x=1", BODY)
    refused(lambda: a.verify("POST", URL, v2_headers(wrong_uri), BODY, NOW_MS))
    # a v1 signature announced as v2 does not pass
    refused(lambda: a.verify("POST", URL, v2_headers(v1(SECRET, BODY)), BODY, NOW_MS))
    unknown = {"x-hubspot-signature": v1(SECRET, BODY), "x-hubspot-signature-version": "v9"}
    refused(lambda: a.verify("POST", URL, unknown, BODY, NOW_MS))


def test_v3_good() -> None:
    ts = NOW_MS - 1000
    auth().verify("POST", URL, v3_headers(v3(SECRET, "POST", URL, BODY, ts), ts), BODY, NOW_MS)


@pytest.mark.parametrize(
    ("secret", "body", "timestamp", "message"),
    [
        ("wrong-secret", BODY, NOW_MS, "invalid"),
        (SECRET, BODY + b"x", NOW_MS, "invalid"),
        (SECRET, BODY, NOW_MS - 300_001, "too old"),
        (SECRET, BODY, NOW_MS + 300_001, "future"),
    ],
)
def test_v3_bad(secret: str, body: bytes, timestamp: int, message: str) -> None:
    signature = v3(secret, "POST", URL, BODY, timestamp)
    error = refused(
        lambda: auth().verify("POST", URL, v3_headers(signature, timestamp), body, NOW_MS)
    )
    assert message in error.message


def test_v3_window_edges_pass() -> None:
    for ts in (NOW_MS - 300_000, NOW_MS + 300_000):
        headers = v3_headers(v3(SECRET, "POST", URL, BODY, ts), ts)
        auth().verify("POST", URL, headers, BODY, NOW_MS)


def test_v3_signature_with_a_different_timestamp_header_fails() -> None:
    signature = v3(SECRET, "POST", URL, BODY, NOW_MS)
    refused(lambda: auth().verify("POST", URL, v3_headers(signature, NOW_MS + 1), BODY, NOW_MS))


def test_missing_headers() -> None:
    a = auth()
    refused(lambda: a.verify("POST", URL, {}, BODY, NOW_MS))
    signature = v3(SECRET, "POST", URL, BODY, NOW_MS)
    refused(lambda: a.verify("POST", URL, {"x-hubspot-signature-v3": signature}, BODY, NOW_MS))
    no_version = {"x-hubspot-signature": v1(SECRET, BODY)}
    refused(lambda: a.verify("POST", URL, no_version, BODY, NOW_MS))
    garbage_ts = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": "1e12"}
    refused(lambda: a.verify("POST", URL, garbage_ts, BODY, NOW_MS))


def test_v3_is_preferred_over_v1() -> None:
    # A valid v1 does not rescue a bad v3 (v1 has no timestamp: it could be a replay).
    headers = v1_headers(v1(SECRET, BODY)) | v3_headers("bad", NOW_MS)
    refused(lambda: auth().verify("POST", URL, headers, BODY, NOW_MS))


def test_public_base_url_behind_a_proxy() -> None:
    seen = "http://ingest:8080/v1/webhooks/hubspot?tenant=a&b=%3A"
    public = "https://hooks.example.com/v1/webhooks/hubspot?tenant=a&b=%3A"
    a = auth(base="https://hooks.example.com")
    a.verify("POST", seen, v2_headers(v2(SECRET, "POST", public, BODY)), BODY, NOW_MS)
    public_v3 = "https://hooks.example.com/v1/webhooks/hubspot?tenant=a&b=:"
    headers = v3_headers(v3(SECRET, "POST", public_v3, BODY, NOW_MS), NOW_MS)
    a.verify("POST", seen, headers, BODY, NOW_MS)
    # without the setting, the URL the app saw is what is signed: the public one fails
    refused(lambda: auth().verify("POST", seen, headers, BODY, NOW_MS))


def test_public_base_url_with_a_path_prefix() -> None:
    seen = "http://10.0.0.5:8000/v1/webhooks/hubspot"
    public = "https://api.example.com/salesops/v1/webhooks/hubspot"
    a = auth(base="https://api.example.com/salesops/")
    headers = v3_headers(v3(SECRET, "POST", public, BODY, NOW_MS), NOW_MS)
    a.verify("POST", seen, headers, BODY, NOW_MS)


def test_v3_decodes_the_documented_escapes() -> None:
    sent = "https://hooks.example.com/hook?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%26"
    signed = "https://hooks.example.com/hook?a=:/?@!$'()*,;&b=%20%26"
    headers = v3_headers(v3(SECRET, "POST", signed, BODY, NOW_MS), NOW_MS)
    auth().verify("POST", sent, headers, BODY, NOW_MS)
    undecoded = v3_headers(v3(SECRET, "POST", sent, BODY, NOW_MS), NOW_MS)
    refused(lambda: auth().verify("POST", sent, undecoded, BODY, NOW_MS))
    # v2 signs the URI exactly as sent
    auth().verify("POST", sent, v2_headers(v2(SECRET, "POST", sent, BODY)), BODY, NOW_MS)


def test_several_app_secrets() -> None:
    a = auth({"111": "secret-one", "222": "secret-two"})
    for secret in ("secret-one", "secret-two"):
        headers = v3_headers(v3(secret, "POST", URL, BODY, NOW_MS), NOW_MS)
        a.verify("POST", URL, headers, BODY, NOW_MS)
        a.verify("POST", URL, v1_headers(v1(secret, BODY)), BODY, NOW_MS)
    headers = v3_headers(v3("secret-three", "POST", URL, BODY, NOW_MS), NOW_MS)
    refused(lambda: a.verify("POST", URL, headers, BODY, NOW_MS))


def test_parse_secrets() -> None:
    assert parse_secrets("abc-123") == {None: "abc-123"}
    assert parse_secrets(" 111:s1 , 222:s2 ") == {"111": "s1", "222": "s2"}
    assert parse_secrets("111:s1,fallback") == {"111": "s1", None: "fallback"}
    for bad in ("", " , ", "111:", "a,b", "111:x,111:y"):
        with pytest.raises(ValueError, match="HubSpot"):
            parse_secrets(bad)
    with pytest.raises(ValueError, match="secret"):
        HubSpotAuth({}, None)


# -- shape check ------------------------------------------------------------------------------


def test_check_body() -> None:
    assert check_body(BODY)[0]["objectId"] == 123
    for body, status in [
        (b"{not json", 400),
        (b'{"objectId": 1}', 400),
        (b"[]", 400),
        (b"[1, 2]", 400),
        (orjson.dumps([{"eventId": i} for i in range(101)]), 413),
    ]:
        with pytest.raises(ApiError) as caught:
            check_body(body)
        assert caught.value.status == status, body[:30]
    assert len(check_body(orjson.dumps([{"eventId": i} for i in range(100)]))) == 100


# -- records ----------------------------------------------------------------------------------


def event(subscription: str, object_id: int = 123, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": 100,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1564113600000,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        **extra,
    }


def run(*events: Any) -> list[SourceRecord | DeadItem]:
    return list(records(orjson.dumps(list(events))))


def only_records(items: list[SourceRecord | DeadItem]) -> list[SourceRecord]:
    assert all(isinstance(i, SourceRecord) for i in items), items
    return [i for i in items if isinstance(i, SourceRecord)]


def test_records_each_subscription_type() -> None:
    items = only_records(
        run(
            event("contact.creation"),
            event("contact.propertyChange", propertyName="email", propertyValue="a@b.example"),
            event("contact.deletion"),
            event("contact.restore"),
            event("company.creation", 9),
            event("deal.propertyChange", 5, propertyName="dealstage", propertyValue="closedwon"),
            event("contact.privacyDeletion"),
        )
    )
    assert [(r.object_type, r.action) for r in items] == [
        ("contact", "fetch"),
        ("contact", "update"),
        ("contact", "delete"),
        ("contact", "fetch"),
        ("company", "fetch"),
        ("deal", "update"),
        ("contact", "erase"),
    ]
    first = items[0]
    assert first.source == "hubspot"
    assert first.tenant == "62515"
    assert first.source_id == "123"
    assert first.occurred_at == datetime(2019, 7, 26, 4, 0, tzinfo=UTC)
    assert first.origin == "CRM_UI"
    assert first.delivery_key == "62515:54321:contact.creation:123:100:1564113600000:"
    assert first.properties == {}
    assert items[1].properties == {"email": "a@b.example"}
    assert items[1].delivery_key.endswith(":email")
    assert items[5].properties == {"dealstage": "closedwon"}
    assert [r.sequence for r in items] == list(range(7))


def test_legacy_event_type() -> None:
    legacy = event("x")
    del legacy["subscriptionType"]
    legacy["eventType"] = "contact.propertyChange"
    legacy |= {"propertyName": "firstname", "propertyValue": "Ann"}
    (record,) = only_records(run(legacy))
    assert record.action == "update"
    assert record.properties == {"firstname": "Ann"}
    assert ":contact.propertyChange:" in record.delivery_key


def test_delivery_key_ignores_attempt_number() -> None:
    (a,) = only_records(run(event("contact.creation", attemptNumber=0)))
    (b,) = only_records(run(event("contact.creation", attemptNumber=3)))
    assert a.delivery_key == b.delivery_key
    (c,) = only_records(run(event("contact.creation", eventId=101)))
    assert c.delivery_key != a.delivery_key


def test_association_changes_are_ignored() -> None:
    assert run(event("contact.associationChange"), event("deal.associationChange")) == []


def test_merge_fans_out() -> None:
    merge = event(
        "contact.merge", 300, primaryObjectId=300, mergedObjectIds=[301, 302, 300], newObjectId=300
    )
    items = only_records(run(merge))
    assert [(r.source_id, r.action, r.merged_into) for r in items] == [
        ("301", "merge", "300"),
        ("302", "merge", "300"),
    ]
    assert len({r.delivery_key for r in items}) == 2
    assert items[0].delivery_key.startswith("62515:54321:contact.merge:300:100:")


def test_merge_into_a_new_record() -> None:
    merge = event("company.merge", 300, primaryObjectId=300, mergedObjectIds=[301], newObjectId=999)
    items = only_records(run(merge))
    assert {(r.source_id, r.merged_into) for r in items} == {("301", "999"), ("300", "999")}


def test_dead_items() -> None:
    no_object = event("contact.creation")
    del no_object["objectId"]
    no_portal = event("contact.creation")
    del no_portal["portalId"]
    no_event_id = event("contact.creation")
    del no_event_id["eventId"]
    items = run(
        event("ticket.creation"),
        event("product.propertyChange", propertyName="x", propertyValue="y"),
        no_object,
        no_portal,
        event("contact.weirdThing"),
        event("contact.propertyChange"),
        event("contact.merge", 5, primaryObjectId=5, mergedObjectIds=[]),
        no_event_id,
        "not an object",
        event("contact.creation", occurredAt="yesterday"),
    )
    assert all(isinstance(i, DeadItem) for i in items)
    dead = [i for i in items if isinstance(i, DeadItem)]
    assert len(dead) == 10
    assert "ticket" in dead[0].reason
    assert dead[0].delivery_key == "62515:54321:ticket.creation:123:100:1564113600000:"
    assert dead[2].reason == "event has no objectId"
    assert dead[2].delivery_key is None
    assert dead[3].reason == "event has no portalId"
    assert dead[3].delivery_key is None
    assert "propertyName" in dead[5].reason
    assert dead[8].item == "not an object"


def test_records_of_a_body_that_is_not_an_array() -> None:
    (item,) = list(records(b'{"a": 1}'))
    assert isinstance(item, DeadItem)
    (item,) = list(records(b"nope"))
    assert isinstance(item, DeadItem)


def test_mapping_file_lists_fetch_properties() -> None:
    props = load_fetch_properties()
    assert set(props) == {"contact", "company", "deal"}
    assert "email" in props["contact"]
    assert "lastmodifieddate" in props["contact"]
    assert "dealstage" in props["deal"]
    assert "associatedcompanyid" not in props["deal"]


# -- the CRM API against a fake HubSpot over HTTP ---------------------------------------------

TOKEN = "pat-test-token"


@pytest.fixture
async def hs() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(token=TOKEN) as server:
        yield server


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_api(hs: FakeHubSpot, sleep: Sleeps | None = None, **kwargs: Any) -> HubSpotApi:
    return HubSpotApi(
        kwargs.pop("token", TOKEN),
        base_url=hs.base_url,
        retry_base=0.01,
        max_retry_after_s=kwargs.pop("max_retry_after_s", 5.0),
        sleep=sleep or Sleeps(),
        **kwargs,
    )


async def test_fetch(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "123")] = {
        "email": "Ann@Acme.example",
        "firstname": "Ann",
        "secret_internal": "not requested",
        "lastmodifieddate": "2024-05-01T10:00:00.000Z",
    }
    async with make_api(hs) as api:
        record = await api.fetch("62515", "contact", "123")
    assert record is not None
    assert record.action == "create"
    assert record.source == "hubspot"
    assert record.tenant == "62515"
    assert record.source_id == "123"
    assert record.properties["email"] == "Ann@Acme.example"
    assert "secret_internal" not in record.properties
    assert record.occurred_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert record.delivery_key == "fetch:contact:123:2024-05-01T10:00:00.000Z"
    assert record.origin is None
    (request,) = hs.requests
    assert request.path == "/crm/v3/objects/contacts/123"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "email" in request.query["properties"].split(",")


async def test_fetch_deal_takes_the_primary_company(hs: FakeHubSpot) -> None:
    hs.objects[("deal", "5")] = {"dealname": "Big", "dealstage": "qualifiedtobuy"}
    hs.associations[("deal", "5")] = {
        "companies": [
            {"id": "8", "type": "deal_to_company_unlabeled"},
            {"id": "9", "type": "deal_to_company_primary"},
        ]
    }
    async with make_api(hs) as api:
        record = await api.fetch("1", "deal", "5")
    assert record is not None
    assert record.properties["associatedcompanyid"] == "9"
    assert hs.requests[0].query["associations"] == "companies"


async def test_fetch_gone(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "7")] = {"email": "x@y.example"}
    hs.archived.add(("contact", "7"))
    async with make_api(hs) as api:
        assert await api.fetch("1", "contact", "404") is None
        assert await api.fetch("1", "contact", "7") is None


async def test_retries_on_500_then_succeeds(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "1")] = {"email": "a@b.example"}
    hs.fail_next(2, status=500)
    sleeps = Sleeps()
    async with make_api(hs, sleeps) as api:
        record = await api.fetch("1", "contact", "1")
    assert record is not None
    assert len(hs.requests) == 3
    assert sleeps.delays == [0.01, 0.02]


async def test_gives_up_after_four_attempts(hs: FakeHubSpot) -> None:
    hs.fail_next(4, status=503)
    async with make_api(hs) as api:
        with pytest.raises(CrmApiError) as caught:
            await api.fetch("1", "contact", "1")
    assert caught.value.retryable is True
    assert caught.value.status == 503
    assert len(hs.requests) == 4


async def test_429_honours_retry_after(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "1")] = {"email": "a@b.example"}
    hs.fail_next(1, status=429, retry_after="0.05")
    sleeps = Sleeps()
    async with make_api(hs, sleeps) as api:
        assert await api.fetch("1", "contact", "1") is not None
    assert sleeps.delays == [0.05]


async def test_429_retry_after_is_capped_and_really_slept(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "1")] = {"email": "a@b.example"}
    hs.fail_next(1, status=429, retry_after="3600")
    api = HubSpotApi(TOKEN, base_url=hs.base_url, retry_base=0.01, max_retry_after_s=0.02)
    async with api:
        started = datetime.now(UTC)
        assert await api.fetch("1", "contact", "1") is not None
        elapsed = (datetime.now(UTC) - started).total_seconds()
    assert 0.02 <= elapsed < 2


async def test_transport_errors_are_retryable(hs: FakeHubSpot) -> None:
    api = HubSpotApi(TOKEN, base_url="http://127.0.0.1:9", retry_base=0.0, attempts=2)
    async with api:
        with pytest.raises(CrmApiError) as caught:
            await api.fetch("1", "contact", "1")
    assert caught.value.retryable is True
    assert caught.value.status is None


async def test_bad_token_is_not_retryable(hs: FakeHubSpot) -> None:
    async with make_api(hs, token="wrong") as api:
        with pytest.raises(CrmApiError) as caught:
            await api.fetch("1", "contact", "1")
    assert caught.value.retryable is False
    assert caught.value.status == 401
    assert len(hs.requests) == 1


async def test_set_owner(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "42")] = {"email": "a@b.example", "hubspot_owner_id": "1"}
    async with make_api(hs) as api:
        await api.set_owner("62515", "contact", "42", "777")
    (request,) = hs.requests_to("PATCH")
    assert request.path == "/crm/v3/objects/contacts/42"
    assert request.json == {"properties": {"hubspot_owner_id": "777"}}
    assert hs.objects[("contact", "42")]["hubspot_owner_id"] == "777"


@pytest.mark.parametrize("status", [400, 404])
async def test_set_owner_not_retryable(hs: FakeHubSpot, status: int) -> None:
    hs.objects[("contact", "42")] = {"email": "a@b.example"}
    if status == 400:
        hs.fail_next(1, status=400)
    async with make_api(hs) as api:
        with pytest.raises(CrmApiError) as caught:
            await api.set_owner("1", "contact", "42" if status == 400 else "43", "777")
    assert caught.value.retryable is False
    assert caught.value.status == status
    assert len(hs.requests) == 1


async def test_set_owner_retryable_after_5xx(hs: FakeHubSpot) -> None:
    hs.objects[("contact", "42")] = {"email": "a@b.example"}
    hs.fail_next(4, status=502)
    async with make_api(hs) as api:
        with pytest.raises(CrmApiError) as caught:
            await api.set_owner("1", "contact", "42", "777")
    assert caught.value.retryable is True
    assert "hubspot_owner_id" not in hs.objects[("contact", "42")]


def owner(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(i),
        "email": f"rep{i}@x.example",
        "firstName": f"Rep{i}",
        "lastName": "Smith",
        "userId": 1000 + i,
        "archived": False,
        "teams": [{"id": "t1", "name": "EMEA", "primary": True}],
        "updatedAt": "2024-02-01T00:00:00.000Z",
        **extra,
    }


async def test_owners_pagination(hs: FakeHubSpot) -> None:
    hs.owners = [owner(i) for i in range(5)] + [owner(99, archived=True, teams=[])]
    async with make_api(hs, page_size=2, portal_id="62515") as api:
        owners = await api.list_owners()
        changed, cursor = await api.list_changed("62515", "owner", None)
    assert [o.source_id for o in owners] == ["0", "1", "2", "3", "4", "99"]
    assert changed == owners
    assert cursor is None
    first = owners[0]
    assert first.object_type == "owner"
    assert first.action == "update"
    assert first.tenant == "62515"
    assert first.properties["email"] == "rep0@x.example"
    assert first.properties["fullName"] == "Rep0 Smith"
    assert first.properties["active"] is True
    assert first.properties["primaryTeamName"] == "EMEA"
    assert owners[-1].properties["active"] is False
    afters = [r.query.get("after") for r in hs.requests_to("GET", "/crm/v3/owners")]
    assert afters[:3] == [None, "2", "4"]


def contact(i: int, modified_ms: int) -> dict[str, Any]:
    return {"email": f"c{i}@x.example", "lastmodifieddate": str(modified_ms)}


async def test_search_pagination_and_cursor(hs: FakeHubSpot) -> None:
    for i in range(5):
        hs.objects[("contact", str(i))] = contact(i, 1_000 + i)
    hs.objects[("company", "9")] = {"name": "Acme", "hs_lastmodifieddate": "5000"}
    async with make_api(hs, page_size=2) as api:
        found, cursor = await api.list_changed("t", "contact", None)
        assert [r.source_id for r in found] == ["0", "1", "2", "3", "4"]
        assert all(r.action == "update" for r in found)
        assert found[0].properties["email"] == "c0@x.example"
        assert cursor == "1004"
        searches = hs.requests_to("POST")
        assert [s.json.get("after") for s in searches] == [None, "2", "4"]
        assert searches[0].json["sorts"] == [
            {"propertyName": "lastmodifieddate", "direction": "ASCENDING"}
        ]
        assert "filterGroups" not in searches[0].json

        found, cursor = await api.list_changed("t", "contact", "1002")
        assert [r.source_id for r in found] == ["3", "4"]
        assert cursor == "1004"
        last = hs.requests_to("POST")[-1].json
        assert last["filterGroups"] == [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": "1002"}]}
        ]

        assert await api.list_changed("t", "contact", "1004") == ([], None)

        found, cursor = await api.list_changed("t", "company", None)
        assert [r.source_id for r in found] == ["9"]
        assert cursor == "5000"
        assert hs.requests_to("POST")[-1].json["sorts"][0]["propertyName"] == (
            "hs_lastmodifieddate"
        )


async def test_search_stops_at_the_result_limit(hs: FakeHubSpot) -> None:
    for i in range(6):
        hs.objects[("contact", str(i))] = contact(i, 1_000 + i)
    async with make_api(hs, page_size=2, search_max_results=4) as api:
        found, cursor = await api.list_changed("t", "contact", None)
        assert [r.source_id for r in found] == ["0", "1", "2", "3"]
        assert cursor == "1002"  # one ms before the newest seen: nothing can be skipped
        found, cursor = await api.list_changed("t", "contact", cursor)
        assert [r.source_id for r in found] == ["3", "4", "5"]
        assert cursor == "1005"


async def test_cursor_is_exact_to_the_millisecond(hs: FakeHubSpot) -> None:
    # 1.003 s is not exact in binary floating point; the cursor must still be 1003.
    hs.objects[("contact", "1")] = contact(1, 1_003)
    async with make_api(hs) as api:
        found, cursor = await api.list_changed("t", "contact", None)
    assert cursor == "1003"
    assert found[0].delivery_key == "reconcile:contact:1:1003"
