"""Request bodies of the benchmarks: canonical REST events, signed HubSpot webhook arrays and
Pipedrive webhook v2 events, every event unique (no duplicates unless a run wants them).

Bodies are built by string formatting of fixed templates, not by serializing dicts: the load
generator shares the two cores with the servers it measures, so its per-request cost must
stay small even when a body is built during a run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.load import Post, RequestMaker

BodyMaker = Callable[[int], bytes]

# -- POST /v1/events ------------------------------------------------------------------------

_EVENT = (
    '{"type":"lead.created","source":"api","tenant":"bench","source_event_id":"%s",'
    '"occurred_at":"2026-11-28T10:00:00+00:00","data":{"source_id":"%s","email":'
    '"buyer%s@acme.example","first_name":"Ann","last_name":"Buyer","company":"Acme",'
    '"country":"US","lead_source":"Web","owner_source_id":"rep-%d"}}'
)


def event(run: str, n: int) -> str:
    key = f"{run}-{n}"
    return _EVENT % (key, key, key, n % 50)


def single(run: str) -> BodyMaker:
    return lambda n: event(run, n).encode()


def batch(run: str, size: int) -> BodyMaker:
    return lambda n: ("[" + ",".join(event(run, n * size + i) for i in range(size)) + "]").encode()


# -- HubSpot --------------------------------------------------------------------------------

HUBSPOT_SECRET = "bench-hubspot-client-secret"
HUBSPOT_PORTAL = 62515
HUBSPOT_APP = 1160452
PUBLIC_BASE_URL = "http://bench.local"
HUBSPOT_PATH = "/webhooks/hubspot"
EVENTS_PER_ARRAY = 100
KNOWN_CONTACTS = 1000  # created through POST /v1/events before the runs
KNOWN_BASE = 5_100_000  # contact ids: known ones from here,
UNKNOWN_BASE = 7_300_000  # contacts ingest has never seen (each becomes a CRM fetch job) here

# A contact.propertyChange as HubSpot sends it (~330 bytes).
_HS_EVENT = (
    '{"eventId":%d,"subscriptionId":2201234,"portalId":%d,"appId":%d,"occurredAt":%d,'
    '"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":%d,'
    '"changeSource":"CRM_UI","sourceId":"userId:4150012","propertyName":"%s",'
    '"propertyValue":"%s"}'
)
_LEAD_STATUS = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)
_INDUSTRY = (
    "COMPUTER_SOFTWARE",
    "FINANCIAL_SERVICES",
    "HOSPITAL_HEALTH_CARE",
    "RETAIL",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "MARKETING_AND_ADVERTISING",
    "TELECOMMUNICATIONS",
)


EVENT_ID_BASE = 3_000_000_000


@dataclass(frozen=True)
class HubSpotArrays:
    """HubSpot deliveries of 100 ``contact.propertyChange`` events; array ``n`` of this run
    holds the events numbered ``start + n*100`` to ``start + n*100 + 99`` of the whole
    benchmark, so event ids never repeat as long as runs take distinct ranges.

    Even-numbered events change a contact ingest knows (a ``lead.updated`` when the value
    differs); odd ones a contact it has never seen (a CRM fetch job). Contacts are taken in
    turn; each successive change of a contact's property takes the next value, and
    ``occurredAt`` grows by 1 ms per array, so no change is stale or a no-op."""

    start: int
    occurred_ms: int
    unknown: int = KNOWN_CONTACTS  # how many never-seen contacts the odd events cycle over

    def event(self, k: int) -> str:
        round_, contact = divmod(k // 2, KNOWN_CONTACTS)
        if k % 2 == 0:
            object_id = KNOWN_BASE + contact
        else:
            object_id = UNKNOWN_BASE + (k // 2) % self.unknown
        kind = round_ % 3
        if kind == 0:
            name, value = "hs_lead_status", _LEAD_STATUS[(round_ // 3) % len(_LEAD_STATUS)]
        elif kind == 1:
            name, value = "industry", _INDUSTRY[(round_ // 3) % len(_INDUSTRY)]
        else:
            name, value = "annualrevenue", str(250_000 + 1_000 * round_)
        return _HS_EVENT % (
            EVENT_ID_BASE + k,
            HUBSPOT_PORTAL,
            HUBSPOT_APP,
            self.occurred_ms + (k - self.start) // EVENTS_PER_ARRAY,
            object_id,
            name,
            value,
        )

    def body(self, n: int) -> bytes:
        first = self.start + n * EVENTS_PER_ARRAY
        events = ",".join(self.event(k) for k in range(first, first + EVENTS_PER_ARRAY))
        return ("[" + events + "]").encode()


def sign_v3(body: bytes, timestamp_ms: int, *, secret: str = HUBSPOT_SECRET) -> dict[str, str]:
    """HubSpot's v3 signature headers over the public URL (SALESOPS_PUBLIC_BASE_URL)."""
    stamp = str(timestamp_ms)
    message = b"POST" + (PUBLIC_BASE_URL + HUBSPOT_PATH).encode() + body + stamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
    }


def hubspot_requests(post: Post, arrays: HubSpotArrays) -> RequestMaker:
    """Requests signed when built (timestamp: now)."""

    def make(n: int) -> bytes:
        body = arrays.body(n)
        return post(body, sign_v3(body, int(time.time() * 1000)))

    return make


def presigned(make: RequestMaker, count: int) -> RequestMaker:
    """The first ``count`` requests built now (sign right before a run: timestamps are good
    for 5 minutes); later ones, if a run gets that far, built when needed."""
    pool = [make(n) for n in range(count)]
    return lambda n: pool[n] if n < count else make(n)


def known_contact_events(run: str) -> list[str]:
    """``lead.created`` through POST /v1/events for the contacts HubSpot events will change:
    ingest then knows them as HubSpot records of the portal."""
    template = (
        '{"type":"lead.created","source":"hubspot","tenant":"%d","source_event_id":"%s-%d",'
        '"occurred_at":"2026-01-05T09:00:00+00:00","data":{"source_id":"%d","email":'
        '"contact%d@customer%d.example","first_name":"Kim","last_name":"Contact%d",'
        '"company":"Customer %d","country":"DE","lead_source":"Web"}}'
    )
    return [
        template % (HUBSPOT_PORTAL, run, i, KNOWN_BASE + i, i, i, i, i)
        for i in range(KNOWN_CONTACTS)
    ]


# -- Pipedrive ------------------------------------------------------------------------------

PIPEDRIVE_USER = "bench-pipedrive"
PIPEDRIVE_PASSWORD = "bench-pipedrive-password"
PIPEDRIVE_COMPANY = 7710001
PIPEDRIVE_PERSONS = 1000

# A webhooks v2 person change, as Pipedrive sends it (~860 bytes).
_PD_EVENT = (
    '{"meta":{"id":"%s","action":"change","entity":"person","entity_id":"%d",'
    '"company_id":"%d","correlation_id":"c6a1b6d4-2f61-4f5e-8c38-0e6c6a2f9f10",'
    '"timestamp":"%s","change_source":"app","attempt":1,"version":"2.0","user_id":"123",'
    '"is_bulk_edit":false,"type":"general"},'
    '"data":{"id":%d,"name":"Pat Person%d","first_name":"Pat","last_name":"Person%d",'
    '"owner_id":%d,"org_id":%d,"emails":[{"value":"pat%d@home.example","primary":false,'
    '"label":"home"},{"value":"pat.person%d@org%d.example","primary":true,"label":"work"}],'
    '"phones":[{"value":"+49 30 %07d","primary":true,"label":"work"}],'
    '"add_time":"2026-01-05T09:00:00Z","update_time":"%s","visible_to":3,'
    '"label_ids":[],"custom_fields":{"d4de1c1518b4531717c676029a45911c340390a6":'
    '{"type":"varchar","value":"EMEA"}}},'
    '"previous":{"owner_id":%d}}'
)


def pipedrive_event(run: str, n: int) -> bytes:
    """A person's owner changed (the person cycles over PIPEDRIVE_PERSONS, the owner over
    20); every delivery id unique."""
    person = n % PIPEDRIVE_PERSONS
    owner = 100 + (n // PIPEDRIVE_PERSONS) % 20
    previous = 100 + (n // PIPEDRIVE_PERSONS - 1) % 20
    seconds = 1_764_400_000 + n
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return (
        _PD_EVENT
        % (
            f"{run}-{n:08d}-4f0e-9d0a-2f1c3b4a5d6e",
            person,
            PIPEDRIVE_COMPANY,
            stamp + ".000Z",
            person,
            person,
            person,
            owner,
            9000 + person % 300,
            person,
            person,
            person % 300,
            person,
            stamp + "Z",
            previous,
        )
    ).encode()


def pipedrive_headers() -> dict[str, str]:
    basic = base64.b64encode(f"{PIPEDRIVE_USER}:{PIPEDRIVE_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
