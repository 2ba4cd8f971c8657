"""Salesforce connector: Outbound Messages, forwarded CDC messages, and the REST API adapter.

Salesforce has no signed JSON webhook; two ways in are supported:

1. **Outbound Messages** (SOAP, sent by a Flow or workflow action). :func:`parse_outbound`
   runs in the request: it parses with defusedxml (no DTD, no entities: a billion-laughs body
   is a 400, not a hang), checks ``OrganizationId`` against the allowlist (401) and the
   notification count (413). The answer is :data:`ACK_RESPONSE`. Later,
   :func:`records_from_outbound` turns the stored body into ``update`` records (an outbound
   message carries the latest values of the selected fields; the pipeline treats an update of
   an unknown record as its creation).
2. **Change Data Capture** messages pulled by a subscriber and forwarded as JSON (one message
   or an array). :func:`check_cdc` checks the shape in the request; :func:`records_from_cdc`
   fans each message out to one record per id in ``recordIds``. ``GAP_*`` changes carry no
   data: they become ``fetch`` records flagged ``needs_reread``.

Tenants are organization ids cut to their first 15 characters, so that the 15- and
18-character forms of one org are one tenant. Forwarded CDC messages should carry the org id
as a top-level ``organizationId`` (or ``org_id``); without it the tenant is ``"default"``.

Activities (Task, Event) name their deal in ``WhatId`` only when it is an Opportunity id
(prefix ``006``); any other ``WhatId`` (account, campaign, case...) is passed on as None,
which the mapping reads as "no deal".

:class:`SalesforceApi` is the :class:`~salesops_ingest.domain.records.CrmApi` adapter over the
REST API. Its calls carry ``Sforce-Call-Options: client=salesops``, so the changes ingest
writes come back with a ``changeOrigin`` containing ``salesops``. :class:`RetryingClient` is
the HTTP transport with the connectors' retry policy (also used by the Pipedrive connector).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import httpx
import orjson
import yaml
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from salesops_common.http import ApiError
from salesops_ingest.connectors.http import RetryingClient, Sleep
from salesops_ingest.domain.records import Action, CrmApiError, DeadItem, SourceRecord

log = logging.getLogger(__name__)

SOURCE = "salesforce"
MAPPING_PATH = Path(__file__).resolve().parent.parent / "mappings" / "salesforce.yaml"
MAX_NOTIFICATIONS = 100
MAX_CDC_MESSAGES = 1000

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"

SOBJECT_TYPES = frozenset({"Lead", "Contact", "Account", "Opportunity", "Task", "Event", "User"})
"""The sObject types the shipped mapping knows; others become dead items."""

OPPORTUNITY_PREFIX = "006"
ACTIVITY_TYPES = frozenset({"Task", "Event"})

ACK_RESPONSE: bytes = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack>"
    b"</notificationsResponse>"
    b"</soapenv:Body>"
    b"</soapenv:Envelope>"
)
ACK_CONTENT_TYPE = "text/xml; charset=utf-8"

# changeType -> (action, needs_reread)
_CHANGE_TYPES: dict[str, tuple[Action, bool]] = {
    "CREATE": ("create", False),
    "UPDATE": ("update", False),
    "DELETE": ("delete", False),
    "UNDELETE": ("fetch", False),
    "GAP_CREATE": ("fetch", True),
    "GAP_UPDATE": ("fetch", True),
    "GAP_DELETE": ("fetch", True),
    "GAP_UNDELETE": ("fetch", True),
    "GAP_OVERFLOW": ("fetch", True),
}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_SOQL_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})"
)


def org_key(org_id: str) -> str:
    """An organization id as one tenant: its first 15 characters (case-sensitive)."""
    return org_id.strip()[:15]


def _properties(object_type: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    what = out.get("WhatId")
    if object_type in ACTIVITY_TYPES and what is not None:
        if not (isinstance(what, str) and what.startswith(OPPORTUNITY_PREFIX)):
            out["WhatId"] = None
    return out


def _sf_time(value: Any) -> datetime | None:
    """Salesforce datetimes (``2024-05-01T10:00:00.000+0000`` or ``...Z``), as aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# 1. Outbound Messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    sobject_type: str  # without the ``sf:`` prefix; "" when the sObject has no xsi:type
    fields: dict[str, str | None]  # xsi:nil="true" -> None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    organization_id: str
    action_id: str | None
    notifications: tuple[Notification, ...]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _envelope(body: bytes) -> tuple[str, str | None, list[Element]]:
    """OrganizationId, ActionId and the Notification elements; ApiError 400 if malformed."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException) as exc:
        raise ApiError(400, f"body is not acceptable XML: {type(exc).__name__}") from None
    found = None
    if _local(root.tag) == "Envelope":
        found = root.find(f"{{{SOAP_ENV_NS}}}Body/{{{OUTBOUND_NS}}}notifications")
    if found is None:
        raise ApiError(400, "body is not a Salesforce Outbound Message (no notifications)")
    org = (found.findtext(f"{{{OUTBOUND_NS}}}OrganizationId") or "").strip()
    if not org:
        raise ApiError(400, "Outbound Message has no OrganizationId")
    action = (found.findtext(f"{{{OUTBOUND_NS}}}ActionId") or "").strip() or None
    return org, action, found.findall(f"{{{OUTBOUND_NS}}}Notification")


def _read_outbound(body: bytes) -> OutboundMessage:
    org, action, items = _envelope(body)
    notifications = tuple(_notification(index, item) for index, item in enumerate(items))
    return OutboundMessage(org, action, notifications)


def _notification(index: int, item: Element) -> Notification:
    notification_id = (item.findtext(f"{{{OUTBOUND_NS}}}Id") or "").strip()
    sobject = item.find(f"{{{OUTBOUND_NS}}}sObject")
    if not notification_id or sobject is None:
        raise ApiError(
            400, "every Notification needs an Id and an sObject", details={"index": index}
        )
    sobject_type = sobject.get(f"{{{XSI_NS}}}type", "").rpartition(":")[2]
    fields: dict[str, str | None] = {}
    for child in sobject:
        if len(child):  # outbound messages select plain fields; nested elements are not fields
            continue
        nil = child.get(f"{{{XSI_NS}}}nil", "").strip().lower() == "true"
        fields[_local(child.tag)] = None if nil else (child.text or "")
    return Notification(notification_id, sobject_type, fields)


def parse_outbound(
    body: bytes, allowed_orgs: Collection[str], max_notifications: int = MAX_NOTIFICATIONS
) -> OutboundMessage:
    """Parse and check an Outbound Message in the request: malformed XML, a DTD or entities,
    or no notifications envelope -> 400; an OrganizationId outside ``allowed_orgs`` (compared
    by the first 15 characters) -> 401; more than ``max_notifications`` -> 413."""
    org, action, items = _envelope(body)
    allowed = {org_key(entry) for entry in allowed_orgs if entry.strip()}
    if org_key(org) not in allowed:
        raise ApiError(401, "Salesforce organization is not allowed")
    if len(items) > max_notifications:
        raise ApiError(413, f"more than {max_notifications} notifications in one message")
    notifications = tuple(_notification(index, item) for index, item in enumerate(items))
    return OutboundMessage(org, action, notifications)


def records_from_outbound(
    body: bytes, *, object_types: Collection[str] = SOBJECT_TYPES
) -> Iterator[SourceRecord | DeadItem]:
    """A stored Outbound Message as ``update`` records, in notification order."""
    try:
        message = _read_outbound(body)
    except ApiError as exc:
        yield DeadItem(exc.message, body.decode("utf-8", "replace"))
        return
    tenant = org_key(message.organization_id)
    now = datetime.now(UTC)
    for index, note in enumerate(message.notifications):
        key = f"sfom:{tenant}:{note.id}"
        item = {"id": note.id, "type": note.sobject_type, "fields": note.fields}
        if note.sobject_type not in object_types:
            reason = f"Salesforce sObject type {note.sobject_type!r} has no mapping"
            yield DeadItem(reason, item, key)
            continue
        record_id = (note.fields.get("Id") or "").strip()
        if not record_id:
            yield DeadItem("notification sObject has no Id", item, key)
            continue
        fields = note.fields
        stamp = fields.get("LastModifiedDate") or fields.get("SystemModstamp")
        occurred = _sf_time(stamp)
        yield SourceRecord(
            source=SOURCE,
            tenant=tenant,
            object_type=note.sobject_type,
            source_id=record_id,
            action="update",
            occurred_at=occurred or now,
            delivery_key=key,
            properties=_properties(note.sobject_type, fields),
            sequence=index,
        )


# --------------------------------------------------------------------------------------------
# 2. Change Data Capture, forwarded as JSON
# --------------------------------------------------------------------------------------------


def check_cdc(body: bytes, max_messages: int = MAX_CDC_MESSAGES) -> list[dict[str, Any]]:
    """One message object or a non-empty array of them, each with an object ``payload``;
    else ApiError 400 (413 over ``max_messages``)."""
    return _cdc_messages(body, max_messages)


def _cdc_messages(body: bytes, max_messages: int | None) -> list[dict[str, Any]]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "body is not JSON") from None
    messages = [document] if isinstance(document, dict) else document
    if not isinstance(messages, list):
        raise ApiError(400, "body must be a message object or an array of them")
    if not messages:
        raise ApiError(400, "body must hold at least one message")
    if max_messages is not None and len(messages) > max_messages:
        raise ApiError(413, f"more than {max_messages} messages in one delivery")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("payload"), dict):
            raise ApiError(400, "every message needs an object payload", details={"index": index})
    return messages


def records_from_cdc(
    body: bytes, *, object_types: Collection[str] = SOBJECT_TYPES
) -> Iterator[SourceRecord | DeadItem]:
    """Stored CDC messages as records, in the order given (Salesforce delivers a
    transaction's changes in order; ``sequence`` is their ``sequenceNumber``)."""
    try:
        messages = _cdc_messages(body, None)
    except ApiError as exc:
        yield DeadItem(exc.message, body.decode("utf-8", "replace"))
        return
    for message in messages:
        yield from _cdc_records(message, object_types)


def _cdc_tenant(message: Mapping[str, Any]) -> str:
    for name in ("organizationId", "org_id"):
        value = message.get(name)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            return org_key(value) if _RECORD_ID.fullmatch(value) else value
    return "default"


def _cdc_records(
    message: dict[str, Any], object_types: Collection[str]
) -> Iterator[SourceRecord | DeadItem]:
    payload: dict[str, Any] = message["payload"]
    header = payload.get("ChangeEventHeader")
    tenant = _cdc_tenant(message)
    if not isinstance(header, dict):
        name = message.get("channel") or message.get("topicName") or message.get("schema")
        yield DeadItem(f"platform event type {name!r} has no mapping", message)
        return
    entity, change_type = header.get("entityName"), header.get("changeType")
    ids = header.get("recordIds")
    if not isinstance(entity, str) or entity not in object_types:
        yield DeadItem(f"Salesforce entity {entity!r} has no mapping", message)
        return
    if change_type not in _CHANGE_TYPES:
        yield DeadItem(f"unknown Salesforce changeType {change_type!r}", message)
        return
    ids = [i for i in ids if isinstance(i, str) and i] if isinstance(ids, list) else []
    if not ids or any(i.endswith("*") for i in ids):
        reason = f"{change_type} for {entity} names no single record: reconcile {entity}"
        yield DeadItem(reason, message)
        return
    action, reread = _CHANGE_TYPES[change_type]
    sequence = header.get("sequenceNumber")
    sequence = sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else 0
    commit = header.get("commitTimestamp")
    occurred = (
        datetime.fromtimestamp(commit / 1000, tz=UTC)
        if isinstance(commit, int | float) and not isinstance(commit, bool)
        else datetime.now(UTC)
    )
    origin = header.get("changeOrigin")
    fields = _cdc_fields(payload, header) if action in ("create", "update") else {}
    base = _cdc_key_base(message, header, tenant, sequence)
    for record_id in ids:
        yield SourceRecord(
            source=SOURCE,
            tenant=tenant,
            object_type=entity,
            source_id=record_id,
            action=action,
            occurred_at=occurred,
            delivery_key=f"{base}:{record_id}",
            properties=_properties(entity, fields),
            origin=origin if isinstance(origin, str) and origin else None,
            sequence=sequence,
            needs_reread=reread,
        )


def _cdc_key_base(
    message: Mapping[str, Any], header: Mapping[str, Any], tenant: str, sequence: int
) -> str:
    transaction = header.get("transactionKey")
    if isinstance(transaction, str) and transaction:
        return f"sfcdc:{tenant}:{transaction}:{sequence}"
    event = message.get("event")
    replay = event.get("replayId") if isinstance(event, dict) else None
    if replay is not None:
        return f"sfcdc:{tenant}:replay-{replay}:{sequence}"
    digest = hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sfcdc:{tenant}:sha256-{digest[:32]}:{sequence}"


def _component(compound: str, component: str) -> str:
    """The object field a compound field's component stands for: ``Name.FirstName`` ->
    ``FirstName``, ``BillingAddress.City`` -> ``BillingCity``, ``Address.City`` -> ``City``."""
    if compound == "Name":
        return component
    if compound.endswith("Address"):
        return compound.removesuffix("Address") + component
    return f"{compound}.{component}"


def _field_name(dotted: str) -> str:
    compound, dot, component = dotted.partition(".")
    return _component(compound, component) if dot else dotted


def _cdc_fields(payload: Mapping[str, Any], header: Mapping[str, Any]) -> dict[str, Any]:
    """The payload's fields, compound fields flattened; for an UPDATE only the changed ones
    (a null is a cleared field). Fields sent as diffs (large text) are left out."""
    fields: dict[str, Any] = {}
    for name, value in payload.items():
        if name == "ChangeEventHeader":
            continue
        if isinstance(value, dict):
            for component, part in value.items():
                fields[_component(name, component)] = part
        else:
            fields[name] = value
    changed = [n for n in header.get("changedFields") or () if isinstance(n, str)]
    if header.get("changeType") == "UPDATE" and changed:
        if any(n.startswith("0x") for n in changed):
            # Undecoded Pub/Sub bitmaps: unchanged fields are null too, so keep the values only.
            fields = {k: v for k, v in fields.items() if v is not None}
        else:
            nulled = [n for n in header.get("nulledFields") or () if isinstance(n, str)]
            wanted = {_field_name(n) for n in (*changed, *nulled)}
            fields = {k: v for k, v in fields.items() if k in wanted}
    for name in header.get("diffFields") or ():
        if isinstance(name, str):
            fields.pop(_field_name(name), None)
    return fields


# --------------------------------------------------------------------------------------------
# 4. The REST API
# --------------------------------------------------------------------------------------------


def load_query_fields(path: Path = MAPPING_PATH) -> dict[str, tuple[str, ...]]:
    """Per sObject type, the fields to SELECT when listing changes: the keys of the mapping's
    ``fields``, less the top-level ``query_skip`` list (fields not every org has)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    skip = {str(name) for name in document.get("query_skip") or ()}
    out: dict[str, tuple[str, ...]] = {}
    for object_type, spec in (document.get("objects") or {}).items():
        if isinstance(spec, dict):
            names = (str(n) for n in (spec.get("fields") or {}) if str(n) not in skip)
            out[str(object_type)] = tuple(names)
    return out


def soql_datetime(moment: datetime) -> str:
    """A datetime as a SOQL dateTime literal (UTC, second precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise CrmApiError(f"invalid Salesforce {what}: {value!r}", retryable=False)
    return value


class SalesforceApi:
    """The Salesforce REST API as ingest uses it (one org, one access token per instance).

    ``fields`` (sObject type -> field names) says what :meth:`list_changed` selects; by default
    the shipped mapping's fields (:func:`load_query_fields`). Retries: :class:`RetryingClient`;
    other 4xx answers raise ``CrmApiError(retryable=False)``.
    """

    source = SOURCE

    def __init__(
        self,
        base_url: str,
        token: str,
        api_version: str = "v60.0",
        *,
        fields: Mapping[str, Sequence[str]] | None = None,
        client_name: str = "salesops",
        query_limit: int = 2000,
        timeout_s: float = 10.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        chosen = fields if fields is not None else load_query_fields()
        self.fields = {str(t): tuple(names) for t, names in chosen.items()}
        self.query_limit = query_limit
        self._data = f"/services/data/{api_version}"
        self._http = RetryingClient(
            "Salesforce",
            base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Sforce-Call-Options": f"client={client_name}",
            },
            timeout_s=timeout_s,
            attempts=attempts,
            backoff_s=backoff_s,
            max_retry_after_s=max_retry_after_s,
            sleep=sleep,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SalesforceApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _record_path(self, object_type: str, source_id: str) -> str:
        _checked(_NAME, object_type, "sObject type")
        _checked(_RECORD_ID, source_id, "record id")
        return f"{self._data}/sobjects/{object_type}/{source_id}"

    async def fetch(self, tenant: str, object_type: str, source_id: str) -> SourceRecord | None:
        """GET the whole record; None when it is gone (404, including deleted records)."""
        response = await self._http.request("GET", self._record_path(object_type, source_id))
        if response.status_code == 404:
            return None
        self._http.raise_for_status(response, f"fetch {object_type} {source_id}")
        answer = self._http.json(response)
        if not isinstance(answer, dict):
            raise CrmApiError("Salesforce record answer is not an object", retryable=True)
        properties = {k: v for k, v in answer.items() if k != "attributes"}
        stamp = properties.get("SystemModstamp") or properties.get("LastModifiedDate")
        return SourceRecord(
            source=SOURCE,
            tenant=tenant,
            object_type=object_type,
            source_id=source_id,
            action="create",
            occurred_at=_sf_time(stamp) or datetime.now(UTC),
            delivery_key=f"fetch:{object_type}:{source_id}:{stamp}",
            properties=_properties(object_type, properties),
        )

    def _soql(self, object_type: str, cursor: str | None) -> str:
        _checked(_NAME, object_type, "sObject type")
        names = self.fields.get(object_type)
        if names is None:
            raise CrmApiError(f"no Salesforce fields configured for {object_type}", retryable=False)
        for name in names:
            _checked(_FIELD, name, "field name")
        select = ", ".join(dict.fromkeys(["Id", *names, "SystemModstamp"]))
        where = ""
        if cursor is not None:
            where = f" WHERE SystemModstamp > {_checked(_SOQL_DATETIME, cursor, 'cursor')}"
        order = f" ORDER BY SystemModstamp ASC LIMIT {self.query_limit}"
        return f"SELECT {select} FROM {object_type}{where}{order}"

    async def list_changed(
        self, tenant: str, object_type: str, cursor: str | None
    ) -> tuple[list[SourceRecord], str | None]:
        """Records with ``SystemModstamp`` after ``cursor`` (a SOQL dateTime literal; None: all),
        oldest first, at most ``query_limit`` per call. When the limit is reached, the records
        of the newest second are left for the next call (more of that second may exist)."""
        rows: list[dict[str, Any]] = []
        path: str | None = f"{self._data}/query"
        params: dict[str, str] | None = {"q": self._soql(object_type, cursor)}
        while path is not None:
            response = await self._http.request("GET", path, params=params)
            self._http.raise_for_status(response, f"query {object_type}")
            page = self._http.json(response)
            if not isinstance(page, dict):
                raise CrmApiError("Salesforce query answer is not an object", retryable=True)
            rows.extend(r for r in page.get("records") or () if isinstance(r, dict))
            next_url = page.get("nextRecordsUrl")
            path = next_url if isinstance(next_url, str) and not page.get("done") else None
            params = None
        found = [r for row in rows if (r := _listed(tenant, object_type, row)) is not None]
        if len(rows) >= self.query_limit and found:
            newest = soql_datetime(found[-1].occurred_at)
            older = [r for r in found if soql_datetime(r.occurred_at) != newest]
            found = older or found
        if not found:
            return [], None
        return found, soql_datetime(found[-1].occurred_at)

    async def set_owner(
        self, tenant: str, object_type: str, source_id: str, owner_source_id: str
    ) -> None:
        """PATCH ``OwnerId`` on the record (Salesforce answers 204)."""
        path = self._record_path(object_type, source_id)
        response = await self._http.request("PATCH", path, json_body={"OwnerId": owner_source_id})
        self._http.raise_for_status(response, f"set owner of {object_type} {source_id}")


def _listed(tenant: str, object_type: str, row: Mapping[str, Any]) -> SourceRecord | None:
    record_id = row.get("Id")
    when = _sf_time(row.get("SystemModstamp"))
    if not isinstance(record_id, str) or not record_id or when is None:
        return None
    properties = {k: v for k, v in row.items() if k != "attributes"}
    return SourceRecord(
        source=SOURCE,
        tenant=tenant,
        object_type=object_type,
        source_id=record_id,
        action="update",
        occurred_at=when,
        delivery_key=f"list:{object_type}:{record_id}:{row.get('SystemModstamp')}",
        properties=_properties(object_type, properties),
    )
