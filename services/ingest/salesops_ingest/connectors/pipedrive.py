"""Pipedrive connector: HTTP Basic authentication, webhook shape, records, and the API adapter.

Pipedrive POSTs one event per request (webhooks v2: ``{"meta", "data", "previous"}``),
authenticated by HTTP Basic credentials configured on the webhook (no signature).
:class:`PipedriveAuth` checks them in constant time before anything is parsed;
:func:`check_body` checks the shape (400 when it is not an event); :func:`records` later turns
the stored event into a record. ``data`` is the full current record, so creations and changes
carry every property (the pipeline drops what did not change). Webhooks v1 events
(``{"current", "previous", "meta": {"object", "action": "updated"...}}``) are accepted too.

Properties are Pipedrive's own, flattened by :func:`flatten` so the mapping can name them:

- person ``emails``/``phones`` (v1: ``email``/``phone``), lists of ``{value, primary, label}``,
  become ``email``/``phone``: the primary value, else the first;
- lead ``value`` ``{"amount", "currency"}`` becomes ``value_amount`` and ``value_currency``;
- an ``address`` object becomes ``address_<part>`` (``address_country``...), as in v1;
- ``custom_fields`` entries become top-level properties under their field key;
- references sent as objects (v1 ``{"value": 12, "name": ...}``) become their id;
- deals get ``salesops_stage``: ``status:won`` / ``status:lost`` when the deal is won or lost,
  else the ``stage_id`` as a string; the mapping's ``stages`` map both (see pipedrive.yaml);
- activities get ``due_at`` (``due_date`` and ``due_time``, UTC) as one datetime;
- v1 deals and activities name their owner ``user_id``: copied to ``owner_id`` if absent.

:class:`PipedriveApi` is the :class:`~salesops_ingest.domain.records.CrmApi` adapter
(``x-api-token`` header; API v2 for deals, persons, organizations and activities, v1 for leads
and users), with the retry policy of :class:`~.http.RetryingClient`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from salesops_common.http import ApiError
from salesops_ingest.connectors.http import RetryingClient, Sleep
from salesops_ingest.domain.records import Action, CrmApiError, DeadItem, SourceRecord

SOURCE = "pipedrive"
DEFAULT_API_BASE = "https://api.pipedrive.com"
ENTITIES = frozenset({"deal", "person", "organization", "lead", "activity", "user"})
"""The entities the shipped mapping knows; others become dead items."""

V2_PATHS = {
    "deal": "deals",
    "person": "persons",
    "organization": "organizations",
    "activity": "activities",
}
V1_PATHS = {"lead": "leads", "user": "users"}
STAGE_PROPERTY = "salesops_stage"

_V2_ACTIONS: dict[str, Action] = {"create": "create", "change": "update", "delete": "delete"}
_V1_ACTIONS: dict[str, Action] = {"added": "create", "updated": "update", "deleted": "delete"}
_PATH_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_MS_THRESHOLD = 100_000_000_000  # epoch seconds reach this in the year 5138


class PipedriveAuth:
    """HTTP Basic credentials of the webhook; every failure is ``ApiError(401)``."""

    def __init__(self, user: str, password: str) -> None:
        if not user or not password:
            raise ValueError("PipedriveAuth needs a user and a password")
        self._user = user.encode()
        self._password = password.encode()

    def verify(self, headers: Mapping[str, str]) -> None:
        value = headers.get("authorization") or headers.get("Authorization") or ""
        scheme, _, encoded = value.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise _unauthenticated("missing HTTP Basic credentials")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _unauthenticated("malformed HTTP Basic credentials") from None
        user, sep, password = decoded.partition(b":")
        # Both compared every time: the answer's timing says nothing about which one failed.
        user_ok = hmac.compare_digest(user, self._user)
        password_ok = hmac.compare_digest(password, self._password)
        if not (sep and user_ok and password_ok):
            raise _unauthenticated("invalid HTTP Basic credentials")


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Basic realm="salesops"'})


# --------------------------------------------------------------------------------------------
# Shape check (in the request) and records (from the stored delivery)
# --------------------------------------------------------------------------------------------


def _is_v1(meta: Mapping[str, Any]) -> bool:
    return "entity" not in meta and "object" in meta


def check_body(body: bytes) -> dict[str, Any]:
    """One webhook event: an object with a ``meta`` object naming the delivery ``id``, the
    ``action`` and the ``entity`` (v1: ``object``); else ApiError 400."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(event, dict):
        raise ApiError(400, "body must be one webhook event (a JSON object)")
    meta = event.get("meta")
    if not isinstance(meta, dict):
        raise ApiError(400, "event has no meta object")
    entity_key = "object" if _is_v1(meta) else "entity"
    for name in ("id", "action", entity_key):
        if _id(meta.get(name)) is None:
            raise ApiError(400, f"event meta has no {name}")
    for name in ("data", "current", "previous"):
        if event.get(name) is not None and not isinstance(event[name], dict | list):
            raise ApiError(400, f"event {name} must be an object")
    return event


def _id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_time(value: Any) -> datetime | None:
    """Pipedrive timestamps: ISO-8601 (``...Z``, or ``2024-05-01 10:00:00`` in UTC) or epoch
    seconds or milliseconds (told apart by magnitude), as int or digit string."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def records(
    body: bytes, *, entities: Collection[str] = ENTITIES
) -> Iterator[SourceRecord | DeadItem]:
    """A stored webhook event as one record (or a DeadItem saying why not)."""
    try:
        event = check_body(body)
    except ApiError as exc:
        yield DeadItem(exc.message, body.decode("utf-8", "replace"))
        return
    meta: dict[str, Any] = event["meta"]
    v1 = _is_v1(meta)
    tenant = _id(meta.get("company_id")) or "default"
    entity = str(meta.get("object") if v1 else meta.get("entity"))
    raw_action = str(meta.get("action"))
    if v1:
        stamp = meta.get("timestamp_micro") or meta.get("timestamp")
        key = f"pd1:{tenant}:{entity}:{meta.get('id')}:{raw_action}:{stamp}"
        data, previous = event.get("current"), event.get("previous")
        action = _V1_ACTIONS.get(raw_action)
    else:
        key = f"pd:{tenant}:{meta.get('id')}"
        data, previous = event.get("data"), event.get("previous")
        action = _V2_ACTIONS.get(raw_action) or _V1_ACTIONS.get(raw_action)
    if entity not in entities:
        yield DeadItem(f"Pipedrive entity {entity!r} has no mapping", event, key)
        return
    if action is None:
        yield DeadItem(f"unsupported Pipedrive action {raw_action!r}", event, key)
        return
    data = data if isinstance(data, dict) else None
    if data is not None and (data.get("is_deleted") is True or data.get("status") == "deleted"):
        action = "delete"
    if action != "delete" and data is None:
        yield DeadItem(f"Pipedrive {raw_action} event has no data", event, key)
        return
    before = previous if isinstance(previous, dict) else {}
    named = meta.get("id") if v1 else meta.get("entity_id")
    ids = (_id(c) for c in (named, (data or {}).get("id"), before.get("id")))
    source_id = next((i for i in ids if i is not None), None)
    if source_id is None:
        yield DeadItem("Pipedrive event names no record id", event, key)
        return
    occurred = parse_time(meta.get("timestamp")) or parse_time((data or {}).get("update_time"))
    origin = meta.get("change_source")
    yield SourceRecord(
        source=SOURCE,
        tenant=tenant,
        object_type=entity,
        source_id=source_id,
        action=action,
        occurred_at=occurred or datetime.now(UTC),
        delivery_key=key,
        properties=flatten(entity, data) if data is not None and action != "delete" else {},
        origin=origin if isinstance(origin, str) and origin else None,
    )


def _primary(items: list[Any]) -> Any:
    """The primary entry's value of a ``[{value, primary, label}]`` list, else the first."""
    entries = [i for i in items if isinstance(i, dict)]
    chosen = next((e for e in entries if e.get("primary") is True), entries[0] if entries else None)
    if chosen is not None:
        value = chosen.get("value")
    else:
        value = next((i for i in items if isinstance(i, str)), None)
    return value if value not in ("", None) else None


_LISTS = {"emails": "email", "email": "email", "phones": "phone", "phone": "phone"}


def flatten(entity: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A Pipedrive record's fields as flat properties (see the module docstring)."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name in _LISTS and isinstance(value, list):
            out[_LISTS[name]] = _primary(value)
        elif name == "value" and entity == "lead":
            parts = value if isinstance(value, dict) else {}
            out["value_amount"] = parts.get("amount")
            out["value_currency"] = parts.get("currency")
        elif name == "address" and isinstance(value, dict):
            out.update({f"address_{part}": v for part, v in value.items()})
        elif name == "custom_fields" and isinstance(value, dict):
            for field, v in value.items():
                out.setdefault(field, v.get("value") if isinstance(v, dict) else v)
        elif name.endswith("_id") and isinstance(value, dict):
            out[name] = _id(value.get("value", value.get("id")))
        else:
            out[name] = value
    if entity in ("deal", "activity") and "owner_id" not in out and "user_id" in out:
        out["owner_id"] = out["user_id"]  # webhooks v1 name the owner user_id
    if entity == "deal" and (stage := _deal_stage(out)) is not None:
        out[STAGE_PROPERTY] = stage
    if entity == "activity" and (due := _due_at(out)) is not None:
        out["due_at"] = due
    return out


def _deal_stage(properties: Mapping[str, Any]) -> str | None:
    status = properties.get("status")
    if status in ("won", "lost"):
        return f"status:{status}"
    return _id(properties.get("stage_id"))


def _due_at(properties: Mapping[str, Any]) -> str | None:
    day, time = properties.get("due_date"), properties.get("due_time")
    if not isinstance(day, str) or not day:
        return None
    clock = time if isinstance(time, str) and time else "00:00"
    return f"{day}T{clock if clock.count(':') == 2 else clock + ':00'}Z"


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


def _modified(data: Mapping[str, Any]) -> tuple[Any, datetime | None]:
    for name in ("update_time", "modified", "add_time", "created"):
        if (when := parse_time(data.get(name))) is not None:
            return data.get(name), when
    return None, None


class PipedriveApi:
    """The Pipedrive API as ingest uses it (one company, one API token per instance).

    ``list_changed`` reads at most about ``max_records`` records per call for v2 entities
    (``updated_since`` is inclusive, so the newest record is read again next time and deduped
    by its delivery key); leads and users have no such filter in v1 and are filtered here.
    """

    source = SOURCE

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        page_size: int = 500,
        max_records: int = 2000,
        timeout_s: float = 10.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.page_size = page_size
        self.max_records = max_records
        self._http = RetryingClient(
            "Pipedrive",
            base_url or DEFAULT_API_BASE,
            headers={"x-api-token": api_token, "Accept": "application/json"},
            timeout_s=timeout_s,
            attempts=attempts,
            backoff_s=backoff_s,
            max_retry_after_s=max_retry_after_s,
            sleep=sleep,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PipedriveApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    @staticmethod
    def _path(entity: str, source_id: str | None = None) -> str:
        if entity in V2_PATHS:
            path = f"/api/v2/{V2_PATHS[entity]}"
        elif entity in V1_PATHS:
            path = f"/api/v1/{V1_PATHS[entity]}"
        else:
            raise CrmApiError(f"Pipedrive entity {entity!r} is not supported", retryable=False)
        if source_id is None:
            return path
        if not _PATH_ID.fullmatch(source_id):
            raise CrmApiError(f"invalid Pipedrive id {source_id!r}", retryable=False)
        return f"{path}/{source_id}"

    def _answer(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """A successful ``{"success": true, "data": ..., "additional_data": ...}`` answer."""
        self._http.raise_for_status(response, what)
        answer = self._http.json(response)
        if not isinstance(answer, dict) or answer.get("success") is False:
            raise CrmApiError(f"Pipedrive {what}: unsuccessful answer", retryable=False)
        return answer

    def _rows(self, answer: Mapping[str, Any]) -> list[dict[str, Any]]:
        data = answer.get("data")
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    async def fetch(self, tenant: str, object_type: str, source_id: str) -> SourceRecord | None:
        """GET the record; None when it is gone (404, or marked deleted)."""
        response = await self._http.request("GET", self._path(object_type, source_id))
        if response.status_code in (404, 410):
            return None
        data = self._answer(response, f"fetch {object_type} {source_id}").get("data")
        if not isinstance(data, dict) or data.get("is_deleted") is True:
            return None
        if data.get("status") == "deleted":
            return None
        stamp, when = _modified(data)
        return SourceRecord(
            source=SOURCE,
            tenant=tenant,
            object_type=object_type,
            source_id=source_id,
            action="create",
            occurred_at=when or datetime.now(UTC),
            delivery_key=f"fetch:{object_type}:{source_id}:{stamp}",
            properties=flatten(object_type, data),
        )

    async def list_changed(
        self, tenant: str, object_type: str, cursor: str | None
    ) -> tuple[list[SourceRecord], str | None]:
        """Records updated at or after ``cursor`` (RFC 3339; None: all), oldest first, and the
        newest update time as the next cursor (None when it did not move)."""
        since = parse_time(cursor) if cursor is not None else None
        if cursor is not None and since is None:
            raise CrmApiError(f"invalid Pipedrive cursor {cursor!r}", retryable=False)
        if object_type in V2_PATHS:
            rows = await self._list_v2(object_type, cursor)
        elif object_type == "lead":
            rows = await self._list_leads(since)
        else:
            rows = await self._list_all(object_type, since)
        found = [r for row in rows if (r := _listed(tenant, object_type, row)) is not None]
        found.sort(key=lambda r: r.occurred_at)
        if not found or (since is not None and found[-1].occurred_at <= since):
            return found, None
        return found, rfc3339(found[-1].occurred_at)

    async def _list_v2(self, entity: str, cursor: str | None) -> list[dict[str, Any]]:
        params = {"sort_by": "update_time", "sort_direction": "asc", "limit": str(self.page_size)}
        if cursor is not None:
            params["updated_since"] = cursor
        rows: list[dict[str, Any]] = []
        while True:
            response = await self._http.request("GET", self._path(entity), params=params)
            answer = self._answer(response, f"list {entity}")
            rows.extend(self._rows(answer))
            extra = answer.get("additional_data")
            after = extra.get("next_cursor") if isinstance(extra, dict) else None
            if not after or len(rows) >= self.max_records:
                return rows
            params = {**params, "cursor": str(after)}

    async def _list_leads(self, since: datetime | None) -> list[dict[str, Any]]:
        """v1 leads, newest first, until one is older than ``since``."""
        rows: list[dict[str, Any]] = []
        start = 0
        while True:
            params = {"sort": "update_time DESC", "start": str(start), "limit": str(self.page_size)}
            response = await self._http.request("GET", self._path("lead"), params=params)
            answer = self._answer(response, "list lead")
            page = self._rows(answer)
            for row in page:
                when = _modified(row)[1]
                if since is not None and when is not None and when < since:
                    return rows
                rows.append(row)
            extra = answer.get("additional_data")
            paging = extra.get("pagination", extra) if isinstance(extra, dict) else {}
            if not page or not paging.get("more_items_in_collection"):
                return rows
            start = int(paging.get("next_start") or start + len(page))

    async def _list_all(self, entity: str, since: datetime | None) -> list[dict[str, Any]]:
        response = await self._http.request("GET", self._path(entity))
        rows = self._rows(self._answer(response, f"list {entity}"))
        if since is None:
            return rows
        return [r for r in rows if (when := _modified(r)[1]) is None or when >= since]

    async def set_owner(
        self, tenant: str, object_type: str, source_id: str, owner_source_id: str
    ) -> None:
        """PATCH ``owner_id`` (an integer user id) on a lead (v1) or a v2 record."""
        if object_type == "user":
            raise CrmApiError("Pipedrive users have no owner", retryable=False)
        try:
            owner = int(owner_source_id)
        except ValueError:
            raise CrmApiError(
                f"Pipedrive owner id {owner_source_id!r} is not an integer", retryable=False
            ) from None
        path = self._path(object_type, source_id)
        response = await self._http.request("PATCH", path, json_body={"owner_id": owner})
        self._answer(response, f"set owner of {object_type} {source_id}")


def _listed(tenant: str, entity: str, row: Mapping[str, Any]) -> SourceRecord | None:
    record_id = _id(row.get("id"))
    stamp, when = _modified(row)
    if record_id is None or when is None:
        return None
    return SourceRecord(
        source=SOURCE,
        tenant=tenant,
        object_type=entity,
        source_id=record_id,
        action="update",
        occurred_at=when,
        delivery_key=f"list:{entity}:{record_id}:{stamp}",
        properties=flatten(entity, row),
    )
