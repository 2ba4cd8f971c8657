"""HubSpot connector: webhook signatures, delivery shape, records, and the CRM API adapter.

A HubSpot app POSTs a JSON array of up to 100 thin events to one target URL. The request path
is, in order:

1. :class:`HubSpotAuth` checks the signature on the **raw body bytes** before anything is
   parsed (v3 HMAC with a 5-minute timestamp window when its headers are present, else the
   legacy v1/v2 SHA-256 signatures). Failures are ``ApiError(401)``.
2. :func:`check_body` checks the shape cheaply (a non-empty JSON array of at most 100 objects)
   so that malformed deliveries get a 400/413 and nothing is stored.
3. Later, :func:`records` turns the stored delivery into :class:`SourceRecord` values (or
   :class:`DeadItem` for events that cannot be used). Creations and restores are thin, so they
   become ``fetch`` records; property changes are partial ``update`` records; merges fan out to
   one ``merge`` record per losing id.

:class:`HubSpotApi` is the :class:`~salesops_ingest.domain.records.CrmApi` adapter over the
CRM v3 REST API (bearer token, configurable base URL, retries with backoff on 429/5xx and
transport errors): read a record, list owners (HubSpot sends no owner webhooks), list
records changed since a cursor (reconciliation), and write the owner back.

Which properties are requested from the API comes from ``fetch_properties`` in
``mappings/hubspot.yaml`` (:func:`load_fetch_properties`), unless the caller passes its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import yaml

from salesops_common.http import ApiError
from salesops_ingest.connectors.http import RetryingClient, Sleep
from salesops_ingest.domain.records import Action, CrmApiError, DeadItem, SourceRecord

log = logging.getLogger(__name__)

SOURCE = "hubspot"
DEFAULT_API_BASE = "https://api.hubapi.com"
MAPPING_PATH = Path(__file__).resolve().parent.parent / "mappings" / "hubspot.yaml"
MAX_EVENTS = 100

OBJECT_TYPES: dict[str, str] = {"contact": "contacts", "company": "companies", "deal": "deals"}
"""records()' object_type -> the CRM API's object path segment."""

MODIFIED_PROPERTY: dict[str, str] = {
    "contact": "lastmodifieddate",
    "company": "hs_lastmodifieddate",
    "deal": "hs_lastmodifieddate",
}
OWNER_PROPERTY = "hubspot_owner_id"

# Headers, lower-case as the caller hands them over.
_H_SIG_V3 = "x-hubspot-signature-v3"
_H_TIMESTAMP = "x-hubspot-request-timestamp"
_H_SIG = "x-hubspot-signature"
_H_SIG_VERSION = "x-hubspot-signature-version"

# HubSpot decodes these percent-escapes in the URI before computing the v3 signature.
_V3_DECODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# 1. Signatures
# --------------------------------------------------------------------------------------------


def parse_secrets(value: str) -> dict[str | None, str]:
    """Parse ``SALESOPS_HUBSPOT_CLIENT_SECRET``: one secret (any app, key None) or
    ``appId:secret,appId:secret`` (a bare secret may be mixed in as the any-app secret).

    Raises ValueError when nothing is configured or an entry is malformed.
    """
    out: dict[str | None, str] = {}
    for raw in value.split(","):
        part = raw.strip()
        if not part:
            continue
        app, sep, secret = part.partition(":")
        app, secret = app.strip(), secret.strip()
        if sep and app.isdigit():
            if not secret:
                raise ValueError(f"HubSpot client secret for app {app} is empty")
            if app in out:
                raise ValueError(f"HubSpot app {app} is configured twice")
            out[app] = secret
        else:
            if None in out:
                raise ValueError("more than one HubSpot client secret without an app id")
            out[None] = part
    if not out:
        raise ValueError("no HubSpot client secret configured")
    return out


def public_uri(url: str, public_base_url: str | None) -> str:
    """The URL HubSpot called: ``url`` as the app saw it, with scheme, host, port (and a path
    prefix, if the public base has one) taken from ``public_base_url``; the path and query
    string are kept exactly as sent."""
    if not public_base_url:
        return url
    parts = urlsplit(url)
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :] if parts.netloc else url
    if rest and not rest.startswith(("/", "?")):
        rest = "/" + rest
    return public_base_url.rstrip("/") + rest


def v3_uri(uri: str) -> str:
    """Decode the percent-escapes HubSpot decodes before signing v3 (``%3A`` -> ``:`` ...)."""
    return _V3_DECODED.sub(lambda m: chr(int(m.group(1), 16)), uri)


def sign_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256((secret + method + uri).encode() + body).hexdigest()


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = (method + v3_uri(uri)).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, message)


class HubSpotAuth:
    """Verifies HubSpot webhook signatures; every failure is ``ApiError(401)``.

    ``secrets`` maps appId (as str) to the app's client secret; the key None is a secret for
    any app. Authentication runs before the body is parsed, so the body's ``appId`` cannot pick
    the secret: each configured secret is tried (constant-time compare each, all of them) and
    the request passes if any matches.
    """

    def __init__(
        self,
        secrets: Mapping[str | None, str],
        public_base_url: str | None,
        tolerance_s: int = 300,
    ) -> None:
        unique = list(dict.fromkeys(s for s in secrets.values() if s))
        if not unique:
            raise ValueError("HubSpotAuth needs at least one client secret")
        self._secrets = unique
        self.public_base_url = public_base_url or None
        self.tolerance_ms = tolerance_s * 1000

    def verify(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now_ms: int
    ) -> None:
        method = method.upper()
        signature_v3 = headers.get(_H_SIG_V3)
        if signature_v3 is not None:
            self._verify_v3(method, url, headers, body, now_ms, signature_v3)
            return
        signature = headers.get(_H_SIG)
        if signature is None:
            raise _unauthenticated("missing HubSpot signature headers")
        version = headers.get(_H_SIG_VERSION, "").strip().lower()
        given = signature.strip().lower()
        if version == "v1":
            ok = self._any(lambda secret: sign_v1(secret, body), given)
        elif version == "v2":
            uri = public_uri(url, self.public_base_url)
            ok = self._any(lambda secret: sign_v2(secret, method, uri, body), given)
        else:
            raise _unauthenticated("unknown HubSpot signature version")
        if not ok:
            raise _unauthenticated("invalid HubSpot signature")

    def _verify_v3(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        now_ms: int,
        signature: str,
    ) -> None:
        timestamp = headers.get(_H_TIMESTAMP, "").strip()
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise _unauthenticated("missing or invalid HubSpot request timestamp")
        sent_ms = int(timestamp)
        if now_ms - sent_ms > self.tolerance_ms:
            raise _unauthenticated("HubSpot request timestamp is too old")
        if sent_ms - now_ms > self.tolerance_ms:
            raise _unauthenticated("HubSpot request timestamp is in the future")
        uri = public_uri(url, self.public_base_url)
        given = signature.strip()
        if not self._any(lambda secret: sign_v3(secret, method, uri, body, timestamp), given):
            raise _unauthenticated("invalid HubSpot signature")

    def _any(self, expected_for: Callable[[str], str], given: str) -> bool:
        given_bytes = given.encode("utf-8", "replace")
        matched = False
        for secret in self._secrets:  # no early exit: the time does not depend on which matched
            expected = expected_for(secret).encode()
            matched |= hmac.compare_digest(expected, given_bytes)
        return matched


# --------------------------------------------------------------------------------------------
# 2. Shape check (in the request)
# --------------------------------------------------------------------------------------------


def check_body(body: bytes, max_events: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """A non-empty JSON array of at most ``max_events`` objects, or ApiError 400/413."""
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(events, list):
        raise ApiError(400, "body must be a JSON array of events")
    if not events:
        raise ApiError(400, "body must hold at least one event")
    if len(events) > max_events:
        raise ApiError(413, f"more than {max_events} events in one delivery")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise ApiError(400, "every event must be a JSON object", details={"index": index})
    return events


# --------------------------------------------------------------------------------------------
# 3. Records from a stored delivery
# --------------------------------------------------------------------------------------------

_ACTIONS: dict[str, Action] = {
    "creation": "fetch",
    "restore": "fetch",
    "propertyChange": "update",
    "deletion": "delete",
    "privacyDeletion": "erase",  # GDPR: the person's data goes, the lead still counts
    "merge": "merge",
}


def _id(value: Any) -> str | None:
    """An id as a string: ints (not bools) and non-empty strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS  # exact: no float rounding


def delivery_key(event: Mapping[str, Any]) -> str | None:
    """HubSpot's delivery identity (portalId, appId, subscriptionType, objectId, eventId,
    occurredAt, propertyName), never ``attemptNumber``; None when a required part is missing
    (appId and propertyName may be absent)."""
    subscription = event.get("subscriptionType") or event.get("eventType")
    parts = [event.get(k) for k in ("portalId", "objectId", "eventId", "occurredAt")]
    if not isinstance(subscription, str) or any(_id(p) is None for p in parts):
        return None
    portal, object_id, event_id, occurred = (_id(p) for p in parts)
    app = _id(event.get("appId")) or ""
    prop = event.get("propertyName")
    prop = prop if isinstance(prop, str) else ""
    return f"{portal}:{app}:{subscription}:{object_id}:{event_id}:{occurred}:{prop}"


def records(body: bytes) -> Iterator[SourceRecord | DeadItem]:
    """Turn a stored delivery into records, in delivery order (``sequence`` = array index).

    ``*.associationChange`` events yield nothing. Events that cannot be used (no objectId or
    portalId, an object other than contact/company/deal, an unknown kind) become DeadItems.
    A merge yields one ``merge`` record per losing id; their delivery key is the event's key
    plus ``:<losing id>`` so that the records of one merge do not dedupe each other.
    """
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError:
        yield DeadItem("body is not JSON", body.decode("utf-8", "replace"))
        return
    if not isinstance(events, list):
        yield DeadItem("body is not a JSON array", events)
        return
    for index, event in enumerate(events):
        yield from _event_records(index, event)


def _event_records(index: int, event: Any) -> Iterator[SourceRecord | DeadItem]:
    if not isinstance(event, dict):
        yield DeadItem("event is not a JSON object", event)
        return
    key = delivery_key(event)
    subscription = event.get("subscriptionType") or event.get("eventType")
    if not isinstance(subscription, str) or "." not in subscription:
        yield DeadItem("event has no subscriptionType", event, key)
        return
    object_type, _, kind = subscription.partition(".")
    if kind == "associationChange":
        return
    if object_type not in OBJECT_TYPES:
        yield DeadItem(f"unsupported HubSpot object type {object_type!r}", event, key)
        return
    action = _ACTIONS.get(kind)
    if action is None:
        yield DeadItem(f"unsupported HubSpot event {subscription!r}", event, key)
        return
    tenant = _id(event.get("portalId"))
    object_id = _id(event.get("objectId"))
    occurred_ms = _epoch_ms(event.get("occurredAt"))
    if tenant is None:
        yield DeadItem("event has no portalId", event, key)
        return
    if object_id is None:
        yield DeadItem("event has no objectId", event, key)
        return
    if occurred_ms is None:
        yield DeadItem("event has no occurredAt (epoch ms)", event, key)
        return
    if key is None:
        yield DeadItem("event has no eventId", event, key)
        return
    origin = event.get("changeSource")
    base: dict[str, Any] = {
        "source": SOURCE,
        "tenant": tenant,
        "object_type": object_type,
        "occurred_at": _from_ms(occurred_ms),
        "origin": origin if isinstance(origin, str) else None,
        "sequence": index,
    }
    if action == "update":
        name = event.get("propertyName")
        if not isinstance(name, str) or not name:
            yield DeadItem("propertyChange event has no propertyName", event, key)
            return
        properties = {name: event.get("propertyValue")}
        yield SourceRecord(
            **base, source_id=object_id, action="update", delivery_key=key, properties=properties
        )
    elif action == "merge":
        yield from _merge_records(event, key, object_id, base)
    elif action in ("delete", "erase"):
        yield SourceRecord(**base, source_id=object_id, action=action, delivery_key=key)
    else:
        yield SourceRecord(**base, source_id=object_id, action="fetch", delivery_key=key)


def _merge_records(
    event: Mapping[str, Any], key: str, object_id: str, base: dict[str, Any]
) -> Iterator[SourceRecord | DeadItem]:
    """The survivor is ``newObjectId`` when HubSpot created a new record by the merge, else
    ``primaryObjectId`` (else ``objectId``); every other id involved is merged into it."""
    primary = _id(event.get("primaryObjectId"))
    survivor = _id(event.get("newObjectId")) or primary or object_id
    merged_raw = event.get("mergedObjectIds")
    candidates = [_id(v) for v in merged_raw] if isinstance(merged_raw, list) else []
    if primary is not None:
        candidates.append(primary)
    if not candidates:
        candidates.append(object_id)
    losers = [c for c in dict.fromkeys(candidates) if c is not None and c != survivor]
    if not losers:
        yield DeadItem("merge event names no merged object", dict(event), key)
        return
    for loser in losers:
        yield SourceRecord(
            **base,
            source_id=loser,
            action="merge",
            merged_into=survivor,
            delivery_key=f"{key}:{loser}",
        )


# --------------------------------------------------------------------------------------------
# 4. The CRM API
# --------------------------------------------------------------------------------------------


def load_fetch_properties(path: Path = MAPPING_PATH) -> dict[str, tuple[str, ...]]:
    """Per object type, the properties to request: ``fetch_properties`` of the mapping, else
    the keys of its ``fields`` (objects without a CRM object path, like owners, are skipped)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    objects = document.get("objects") or {}
    out: dict[str, tuple[str, ...]] = {}
    for object_type, spec in objects.items():
        if object_type not in OBJECT_TYPES or not isinstance(spec, dict):
            continue
        listed = spec.get("fetch_properties")
        names = listed if isinstance(listed, list) else list((spec.get("fields") or {}).keys())
        out[object_type] = tuple(str(n) for n in names)
    return out


def _parse_time(value: Any) -> datetime | None:
    """HubSpot timestamps: ISO 8601 (``...Z``) or epoch ms (as int or digit string)."""
    ms = _epoch_ms(value)
    if ms is not None:
        return _from_ms(ms)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


class HubSpotApi:
    """The HubSpot CRM v3 API as ingest uses it (one private-app or OAuth token per instance).

    Every call goes through the shared :class:`~.http.RetryingClient`: up to ``attempts``
    tries on 408, 429, 5xx and transport errors, sleeping ``retry_base``, 2x, 4x... (or the
    answer's ``Retry-After``, capped at ``max_retry_after_s``); then it raises
    ``CrmApiError(retryable=True)``. Other 4xx answers raise ``CrmApiError(retryable=False)``
    (``fetch`` returns None on 404).
    """

    source = SOURCE

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_API_BASE,
        properties: Mapping[str, Sequence[str]] | None = None,
        associations: Mapping[str, Sequence[str]] | None = None,
        portal_id: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 4,
        retry_base: float = 0.2,
        max_retry_after_s: float = 30.0,
        page_size: int = 100,
        search_max_results: int = 10_000,
        include_archived_owners: bool = True,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.properties: dict[str, tuple[str, ...]] = (
            {k: tuple(v) for k, v in properties.items()}
            if properties is not None
            else load_fetch_properties()
        )
        self.associations: dict[str, tuple[str, ...]] = (
            {k: tuple(v) for k, v in associations.items()}
            if associations is not None
            else {"deal": ("companies",)}
        )
        self.portal_id = portal_id
        self.page_size = page_size
        self.search_max_results = search_max_results
        self.include_archived_owners = include_archived_owners
        self._http = RetryingClient(
            "HubSpot",
            base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout_s=timeout_s,
            attempts=attempts,
            backoff_s=retry_base,
            max_retry_after_s=max_retry_after_s,
            sleep=sleep,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HubSpotApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- CrmApi -------------------------------------------------------------------------------

    async def fetch(self, tenant: str, object_type: str, source_id: str) -> SourceRecord | None:
        """GET the record with the mapping's properties; None when it is gone (404, archived).

        For deals the primary company association is returned as the ``associatedcompanyid``
        property (HubSpot has it as a property on contacts only). If HubSpot answers with
        another id (the record was merged), the record is returned under the answered id.
        """
        path = f"/crm/v3/objects/{_plural(object_type)}/{source_id}"
        params: dict[str, str] = {}
        if names := self.properties.get(object_type):
            params["properties"] = ",".join(names)
        if assoc := self.associations.get(object_type):
            params["associations"] = ",".join(assoc)
        response = await self._http.request("GET", path, params=params)
        if response.status_code == 404:
            return None
        self._http.raise_for_status(response, f"fetch {object_type} {source_id}")
        answer = self._json(response)
        if answer.get("archived"):
            return None
        properties = dict(answer.get("properties") or {})
        company = _primary_company(answer.get("associations"))
        if company is not None and "associatedcompanyid" not in properties:
            properties["associatedcompanyid"] = company
        record_id = _id(answer.get("id")) or source_id
        updated = answer.get("updatedAt")
        return SourceRecord(
            source=SOURCE,
            tenant=tenant,
            object_type=object_type,
            source_id=record_id,
            action="create",
            occurred_at=_parse_time(updated) or datetime.now(UTC),
            delivery_key=f"fetch:{object_type}:{record_id}:{updated}",
            properties=properties,
        )

    async def list_changed(
        self, tenant: str, object_type: str, cursor: str | None
    ) -> tuple[list[SourceRecord], str | None]:
        """Records modified after ``cursor`` (epoch ms string; None = all), oldest first, via
        the search API. Owners (``object_type="owner"``) are all listed, with cursor None.

        HubSpot's search stops at 10,000 results per query; when that is reached the returned
        cursor is one millisecond before the newest modification seen, so records sharing that
        millisecond are read again next time rather than skipped.
        """
        if object_type == "owner":
            return await self.list_owners(tenant), None
        plural = _plural(object_type)
        modified = MODIFIED_PROPERTY[object_type]
        names = list(dict.fromkeys([*self.properties.get(object_type, ()), modified]))
        request: dict[str, Any] = {
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": names,
            "limit": self.page_size,
        }
        if cursor is not None:
            request["filterGroups"] = [
                {"filters": [{"propertyName": modified, "operator": "GT", "value": cursor}]}
            ]
        found: list[SourceRecord] = []
        newest: int | None = None
        after: str | None = None
        truncated = False
        while True:
            body = dict(request, after=after) if after is not None else request
            response = await self._http.request(
                "POST", f"/crm/v3/objects/{plural}/search", json_body=body
            )
            self._http.raise_for_status(response, f"search {object_type}")
            page = self._json(response)
            for result in page.get("results") or ():
                record = _search_record(tenant, object_type, result, modified)
                if record is None:
                    continue
                found.append(record)
                ms = _to_ms(record.occurred_at)
                newest = ms if newest is None else max(newest, ms)
            after = _next_after(page)
            if after is None:
                break
            if not after.isdigit() or int(after) + self.page_size > self.search_max_results:
                truncated = True
                break
        if newest is None:
            return [], None
        if truncated:
            floor = int(cursor) if cursor is not None and cursor.isdigit() else None
            if floor is None or newest - 1 > floor:
                newest -= 1
            log.info("HubSpot search for %s hit the result limit; continuing next run", plural)
        return found, str(newest)

    async def set_owner(
        self, tenant: str, object_type: str, source_id: str, owner_source_id: str
    ) -> None:
        """PATCH ``hubspot_owner_id`` on the record."""
        path = f"/crm/v3/objects/{_plural(object_type)}/{source_id}"
        body = {"properties": {OWNER_PROPERTY: owner_source_id}}
        response = await self._http.request("PATCH", path, json_body=body)
        self._http.raise_for_status(response, f"set owner of {object_type} {source_id}")

    # -- owners -------------------------------------------------------------------------------

    async def list_owners(self, tenant: str | None = None) -> list[SourceRecord]:
        """All owners (active, then archived unless ``include_archived_owners`` is off) as
        ``owner`` update records. Properties: the API's fields (id, email, firstName, lastName,
        userId, archived, teams...) plus computed ``fullName``, ``active`` (= not archived) and
        ``primaryTeamName``. ``tenant`` defaults to ``portal_id`` (else ``"default"``)."""
        tenant = tenant or self.portal_id or "default"
        out: list[SourceRecord] = []
        listings = ("false", "true") if self.include_archived_owners else ("false",)
        for archived in listings:
            after: str | None = None
            while True:
                params = {"limit": str(self.page_size), "archived": archived}
                if after is not None:
                    params["after"] = after
                response = await self._http.request("GET", "/crm/v3/owners", params=params)
                self._http.raise_for_status(response, "list owners")
                page = self._json(response)
                for owner in page.get("results") or ():
                    record = _owner_record(tenant, owner)
                    if record is not None:
                        out.append(record)
                after = _next_after(page)
                if after is None:
                    break
        return out

    # -- transport ----------------------------------------------------------------------------

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        answer = self._http.json(response)
        if not isinstance(answer, dict):
            raise CrmApiError(
                "HubSpot answered with a body that is not a JSON object",
                retryable=True,
                status=response.status_code,
            )
        return answer


def _plural(object_type: str) -> str:
    try:
        return OBJECT_TYPES[object_type]
    except KeyError:
        raise CrmApiError(
            f"HubSpot object type {object_type!r} is not supported", retryable=False
        ) from None


def _next_after(page: Mapping[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _primary_company(associations: Any) -> str | None:
    """The id of the primary associated company (else the first) from a v3 object answer."""
    if not isinstance(associations, dict):
        return None
    companies = (associations.get("companies") or {}).get("results") or []
    ids = [r for r in companies if isinstance(r, dict) and _id(r.get("id"))]
    for result in ids:
        if "primary" in str(result.get("type", "")).lower():
            return _id(result["id"])
    return _id(ids[0]["id"]) if ids else None


def _search_record(
    tenant: str, object_type: str, result: Any, modified: str
) -> SourceRecord | None:
    if not isinstance(result, dict) or (record_id := _id(result.get("id"))) is None:
        return None
    properties = dict(result.get("properties") or {})
    when = _parse_time(properties.get(modified)) or _parse_time(result.get("updatedAt"))
    if when is None:
        return None
    return SourceRecord(
        source=SOURCE,
        tenant=tenant,
        object_type=object_type,
        source_id=record_id,
        action="update",
        occurred_at=when,
        delivery_key=f"reconcile:{object_type}:{record_id}:{_to_ms(when)}",
        properties=properties,
    )


def _owner_record(tenant: str, owner: Any) -> SourceRecord | None:
    if not isinstance(owner, dict) or (owner_id := _id(owner.get("id"))) is None:
        return None
    properties = dict(owner)
    first, last = owner.get("firstName") or "", owner.get("lastName") or ""
    properties["fullName"] = f"{first} {last}".strip() or None
    properties["active"] = not bool(owner.get("archived"))
    teams = [t for t in owner.get("teams") or () if isinstance(t, dict)]
    primary = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
    properties["primaryTeamName"] = primary.get("name") if primary else None
    updated = owner.get("updatedAt")
    return SourceRecord(
        source=SOURCE,
        tenant=tenant,
        object_type="owner",
        source_id=owner_id,
        action="update",
        occurred_at=_parse_time(updated) or datetime.now(UTC),
        delivery_key=f"owner:{owner_id}:{updated}",
        properties=properties,
    )
