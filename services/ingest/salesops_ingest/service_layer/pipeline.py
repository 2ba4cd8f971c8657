"""The processing pipeline: CRM record changes in, canonical events out, in one transaction.

Every way in (webhooks, CSV imports, the REST API, reconciliation pulls, API fetches) ends
here, so every source gets the same hygiene:

1. delivery dedupe: a change whose delivery identity was seen within the window is dropped;
2. mapping (per-source YAML) and normalization; a change that cannot be mapped is
   dead-lettered with the reason, and the rest of the delivery goes on;
3. record state: each CRM record's canonical fields and the CRM time each field was last set
   are kept, so an update older than what is known is not applied over newer state, and an
   update that changes nothing emits nothing;
4. duplicate leads: a new lead matching a live one (same e-mail; same phone and a close name;
   same company domain and a close full name) is merged into it: only ``lead.merged``;
5. canonical events with deterministic ids go to the outbox with the state, atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common import writes
from salesops_common.envelope import Envelope, name_uuid
from salesops_common.kafka import Topics
from salesops_common.outbox import outbox_writes
from salesops_common.writes import Statement
from salesops_ingest.adapters import state as repo
from salesops_ingest.adapters.repository import proposed_id
from salesops_ingest.adapters.state import RecordState
from salesops_ingest.domain.mapping import SourceMapping
from salesops_ingest.domain.matching import LeadIdentity, best_match, blocking_keys
from salesops_ingest.domain.model import REFERENCES, RecordKey
from salesops_ingest.domain.normalize import normalize_fields
from salesops_ingest.domain.records import MappedRecord, MappingError, SourceRecord
from salesops_ingest.service_layer.erasure import erase_lead, erasure_event_id

EVENT_NAMESPACE = UUID("5f0c7d1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f")
# Sources whose updates are partial (one property at a time): an update about a record
# ingest has never seen is read in full from the CRM instead of emitted as a creation.
THIN_SOURCES = frozenset({"hubspot"})
# Sources whose users (owners) have no webhook: the object type to read them as.
OWNER_APIS = {"hubspot": "owner"}
# Types a client declares that mean more than their fields: published once per transition.
LIFECYCLE = frozenset({"lead.converted", "lead.disqualified"})
_DOMAINS = frozenset({"domain", "website"})
IDENTITY_FIELDS = ("email", "phone", "domain", "first_name", "last_name", "company")
REQUIRED = {
    "lead": (("email", "phone"), ("last_name",), ("company", "domain")),
    "account": (("name",),),
    "deal": (("amount",), ("stage",)),
}


@dataclass(slots=True)
class Change:
    """One record change to apply. ``forced_type`` is the event type a REST client declared;
    ``event_id`` the id a REST client's ``source_event_id`` determines."""

    record: SourceRecord
    kind: str
    mapped: MappedRecord | None = None
    forced_type: str | None = None
    event_id: UUID | None = None
    dead_letter_key: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # accepted | duplicate | unchanged | merged | queued | stale
    entity_id: UUID | None = None
    event_ids: tuple[UUID, ...] = ()


@dataclass(slots=True)
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    quality: Counter[tuple[str, str]] = field(default_factory=Counter)


def map_record(
    record: SourceRecord, mapping: SourceMapping, *, coerced: bool = False
) -> tuple[str, MappedRecord | None]:
    """The record's canonical kind and, for creations and updates, its canonical fields,
    normalized. ``coerced``: the properties are canonical fields already validated against
    the canonical models (REST events), so mapping them again is skipped. Raises
    MappingError."""
    kind = mapping.kind_of(record.object_type)
    if record.action not in ("create", "update"):
        return kind, None
    if coerced:
        mapped = MappedRecord(kind=kind, record=record, fields=dict(record.properties))
    else:
        mapped = mapping.apply(record)
    normalized = normalize_fields(kind, mapped.fields)
    fields = normalized.fields
    if record.action == "update" and "domain" in fields and not mapped.fields.keys() & _DOMAINS:
        # A partial update of the e-mail alone says nothing about the company's domain.
        del fields["domain"]
    return kind, MappedRecord(
        kind=kind,
        record=record,
        fields=fields,
        outcome=mapped.outcome,
        issues=normalized.issues,
    )


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _event_id(
    record: SourceRecord, type_name: str, subject: UUID, payload: Mapping[str, Any]
) -> UUID:
    digest = hashlib.blake2b(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), digest_size=12)
    return name_uuid(
        EVENT_NAMESPACE,
        f"{record.source}/{record.tenant}/{record.delivery_key}/{type_name}/{subject}/"
        f"{digest.hexdigest()}",
    )


def _identity(fields: Mapping[str, Any]) -> LeadIdentity:
    return LeadIdentity(**{f: fields.get(f) for f in IDENTITY_FIELDS})


Key = tuple[str, str]


class LeadIndex:
    """The duplicate-lead index as this transaction sees it: the rows of ``lead_keys`` read
    for the keys asked about, and every lead this transaction indexed again (or dropped),
    which replace their rows when the transaction ends (``changed``). A lead created earlier
    in the batch is a candidate for a later one, as it was when each lead's keys were written
    at once."""

    def __init__(self) -> None:
        self._loaded: dict[Key, set[UUID]] = {}
        self._identities: dict[UUID, dict[str, Any]] = {}
        self._pending: dict[Key, set[UUID]] = {}
        self.changed: dict[UUID, tuple[list[Key], dict[str, Any]] | None] = {}

    async def load(self, conn: asyncpg.Connection, keys: set[Key]) -> None:
        missing = sorted(k for k in keys if k not in self._loaded)
        for key in missing:
            self._loaded[key] = set()
        for key, lead_id, identity in await repo.candidate_leads(conn, missing):
            self._loaded[key].add(lead_id)
            self._identities.setdefault(lead_id, identity)

    async def candidates(
        self, conn: asyncpg.Connection, keys: Sequence[Key]
    ) -> list[tuple[UUID, LeadIdentity]]:
        """Leads indexed under any of ``keys``, by id (the order ties are decided in)."""
        await self.load(conn, set(keys))
        found: set[UUID] = set()
        for key in keys:
            found.update(i for i in self._loaded[key] if i not in self.changed)
            found.update(self._pending.get(key, ()))
        out = []
        for lead_id in sorted(found):
            entry = self.changed.get(lead_id)
            identity = entry[1] if entry is not None else self._identities[lead_id]
            out.append((lead_id, LeadIdentity(**identity)))
        return out

    def set(self, lead_id: UUID, keys: Sequence[Key], identity: dict[str, Any] | None) -> None:
        """``lead_id`` indexed under ``keys`` from now on (none: not a candidate any more)."""
        earlier = self.changed.get(lead_id)
        for key in earlier[0] if earlier is not None else ():
            self._pending[key].discard(lead_id)
        if identity is None or not keys:
            self.changed[lead_id] = None if identity is None else ([], identity)
            return
        self.changed[lead_id] = (list(keys), identity)
        for key in keys:
            self._pending.setdefault(key, set()).add(lead_id)


class Pipeline:
    """Applies changes against locked record state; one instance per transaction."""

    def __init__(self, conn: asyncpg.Connection, *, topics: Topics, match_leads: bool = True):
        self.conn = conn
        self.topics = topics
        self.match_leads = match_leads
        self.result = BatchResult()
        self._states: dict[RecordKey, RecordState] = {}
        self._refs: dict[RecordKey, UUID] = {}
        self._fetches: list[tuple[str, str, str, str]] = []
        self._erasures: list[UUID] = []
        self._leads = LeadIndex()

    async def apply(
        self, changes: Sequence[Change], *, dedupe: bool = True, also: Sequence[Statement] = ()
    ) -> BatchResult:
        """Apply ``changes`` in order; the caller's transaction commits state and outbox.
        ``result.outcomes`` is aligned with ``changes``. ``also``: the caller's writes,
        independent of these, sent with the last of them."""
        fresh = await self._fresh(changes) if dedupe else [True] * len(changes)
        keys: set[RecordKey] = set()
        ref_keys: set[RecordKey] = set()
        for change, is_fresh in zip(changes, fresh, strict=True):
            rec = change.record
            keys.add(RecordKey(change.kind, rec.source, rec.tenant, rec.source_id))
            if not is_fresh:
                continue
            if rec.merged_into:
                keys.add(RecordKey(change.kind, rec.source, rec.tenant, rec.merged_into))
            if change.mapped is not None:
                ref_keys.update(k for _, k in self._references(change))
        self._states, self._refs = await repo.lock_records(self.conn, keys, ref_keys)
        await self._read_unknown_owners(ref_keys - keys)
        if self.match_leads:
            await self._leads.load(self.conn, self._new_lead_keys(changes, fresh))
        for index, (change, is_fresh) in enumerate(zip(changes, fresh, strict=True)):
            if index % 200 == 199:
                await asyncio.sleep(0)  # a long batch lets requests in now and then
            if is_fresh:
                outcome = await self._apply_one(change)
            else:
                rec = change.record
                st = self._states[RecordKey(change.kind, rec.source, rec.tenant, rec.source_id)]
                outcome = Outcome("duplicate", st.id)
            self.result.outcomes.append(outcome)
        # Two round trips for every write: the new lead keys once the old ones are gone.
        old_keys, new_keys = repo.lead_key_writes(self._leads.changed)
        await writes.execute(self.conn, repo.record_writes(list(self._states.values())) + old_keys)
        if self._erasures:  # rare: once the state and keys are saved, as erasure drops keys
            await writes.execute(self.conn, new_keys)
            new_keys = []
            for lead_id in dict.fromkeys(self._erasures):
                erasure = await erase_lead(self.conn, lead_id)
                self.result.envelopes.extend(erasure.envelopes if erasure else ())
        await writes.execute(
            self.conn,
            new_keys
            + repo.fetch_writes(self._fetches)
            + repo.quality_writes(self.result.quality)
            + outbox_writes(self.result.envelopes, topics=self.topics)
            + list(also),
        )
        return self.result

    def _new_lead_keys(self, changes: Sequence[Change], fresh: Sequence[bool]) -> set[Key]:
        """The blocking keys of every lead this batch may create: their candidates are read
        in one statement before the changes are applied."""
        wanted: set[Key] = set()
        for change, is_fresh in zip(changes, fresh, strict=True):
            if not is_fresh or change.kind != "lead" or change.mapped is None:
                continue
            rec = change.record
            st = self._states[RecordKey(change.kind, rec.source, rec.tenant, rec.source_id)]
            if rec.action == "create" or st.status != "live":
                wanted.update(blocking_keys(_identity(change.mapped.fields)))
        return wanted

    async def _read_unknown_owners(self, refs: set[RecordKey]) -> None:
        """HubSpot has no owner webhook: an owner never seen is read from its owners API."""
        wanted = [k for k in refs if k.kind == "rep" and k.source in OWNER_APIS]
        if not wanted:
            return
        rows = await self.conn.fetch(
            """
            SELECT e.source, e.tenant, e.source_id FROM entities e
            JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(source, tenant, source_id)
              USING (source, tenant, source_id)
            WHERE e.kind = 'rep' AND e.status = 'referenced'
            """,
            [k.source for k in wanted],
            [k.tenant for k in wanted],
            [k.source_id for k in wanted],
        )
        for r in rows:
            self._fetches.append(
                (r["source"], r["tenant"], OWNER_APIS[r["source"]], r["source_id"])
            )

    async def _fresh(self, changes: Sequence[Change]) -> list[bool]:
        wanted = [(c.record.source, c.record.delivery_key) for c in changes]
        new = await repo.claim_delivery_keys(self.conn, sorted(set(wanted)))
        fresh = []
        for change, key in zip(changes, wanted, strict=True):
            if key in new:
                new.discard(key)  # a second copy inside the same batch is a duplicate too
                fresh.append(True)
            else:
                fresh.append(False)
                self.result.quality[(change.record.source, "deliveries_duplicate")] += 1
        return fresh

    def _references(self, change: Change) -> list[tuple[str, RecordKey]]:
        assert change.mapped is not None
        rec = change.record
        out = []
        for fname, value in change.mapped.fields.items():
            if value is None or not fname.endswith("_source_id"):
                continue
            canonical = fname.removesuffix("_source_id") + "_id"
            kind = REFERENCES.get(canonical)
            if kind is not None:
                out.append((canonical, RecordKey(kind, rec.source, rec.tenant, str(value))))
        return out

    # -- one change -----------------------------------------------------------------------

    async def _apply_one(self, change: Change) -> Outcome:
        rec = change.record
        st = self._states[RecordKey(change.kind, rec.source, rec.tenant, rec.source_id)]
        action = rec.action
        if action == "fetch" or (
            action == "update" and st.status == "referenced" and rec.source in THIN_SOURCES
        ):
            self._fetches.append((rec.source, rec.tenant, rec.object_type, rec.source_id))
            return Outcome("queued", st.id)
        if action == "delete" or (action == "erase" and change.kind != "lead"):
            return self._delete(change, st)
        if action == "erase":
            return self._erase(st)
        if action == "merge":
            return await self._crm_merge(change, st)
        assert change.mapped is not None
        st.object_type = rec.object_type
        if st.status == "referenced" or (st.status == "deleted" and action == "create"):
            return await self._create(change, st)
        if st.status == "deleted":
            return Outcome("stale", st.id)
        return await self._update(change, st)

    def _emit(
        self,
        change: Change,
        type_name: str,
        subject: UUID,
        payload: dict[str, Any],
        *,
        key: UUID | None = None,
    ) -> UUID:
        rec = change.record
        payload.update(schema_version=1, source=rec.source, tenant=rec.tenant)
        payload.setdefault("id", str(subject))
        payload.setdefault("source_id", rec.source_id)
        event_id = change.event_id if change.event_id and type_name == change.forced_type else None
        event_id = event_id or _event_id(rec, type_name, subject, payload)
        self.result.envelopes.append(
            Envelope(
                type=type_name,
                source=f"/ingest/{rec.source}/{rec.tenant}",
                subject=str(key or subject),
                key=str(key or subject),
                data=payload,
                id=event_id,
                time=rec.occurred_at,
            )
        )
        return event_id

    def _canonical(self, change: Change, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Fields with references turned into canonical ids."""
        rec = change.record
        out: dict[str, Any] = {}
        for fname, value in fields.items():
            if fname.endswith("_source_id"):
                canonical = fname.removesuffix("_source_id") + "_id"
                kind = REFERENCES.get(canonical)
                if kind is None:
                    continue
                if value is None:
                    out[canonical] = None
                else:
                    ref = RecordKey(kind, rec.source, rec.tenant, str(value))
                    out[canonical] = str(self._refs[ref])
            else:
                out[fname] = value
        return out

    def _count_quality(self, change: Change, *, created: bool) -> None:
        mapped = change.mapped
        assert mapped is not None
        source = change.record.source
        q = self.result.quality
        q[(source, "records")] += 1
        if "email" in mapped.fields or "invalid_email" in mapped.issues:
            q[(source, "emails")] += 1
        for issue in mapped.issues:
            q[(source, issue)] += 1
        if created and change.kind in REQUIRED:
            q[(source, f"{change.kind}s_created")] += 1
            for options in REQUIRED[change.kind]:
                if all(mapped.fields.get(f) in (None, "") for f in options):
                    q[(source, f"{change.kind}s_missing_fields")] += 1
                    break

    async def _create(self, change: Change, st: RecordState) -> Outcome:
        assert change.mapped is not None
        rec = change.record
        fields = dict(change.mapped.fields)
        ms = _ms(rec.occurred_at)
        self._count_quality(change, created=True)
        if change.kind == "lead":
            self.result.quality[(rec.source, "leads_new")] += 1
        if change.kind == "lead" and self.match_leads:
            merged = await self._match_duplicate(change, st, fields, ms)
            if merged is not None:
                return merged
        st.status = "live"
        st.state = fields
        st.stamps = dict.fromkeys(fields, ms)
        st.dirty = True
        payload = self._canonical(change, fields)
        type_name = f"{change.kind}.created" if change.kind != "activity" else "activity.logged"
        if change.forced_type and change.forced_type.endswith((".created", ".logged")):
            type_name = change.forced_type
        ids = [self._emit(change, type_name, st.id, payload)]
        if change.kind == "deal":
            ids += self._deal_outcome(change, st, fields, payload_base={})
        if change.kind == "lead":
            self._index_lead(st.id, fields)
        return Outcome("accepted", st.id, tuple(ids))

    async def _match_duplicate(
        self, change: Change, st: RecordState, fields: dict[str, Any], ms: int
    ) -> Outcome | None:
        identity = _identity(fields)
        keys = blocking_keys(identity)
        if not keys:
            return None
        candidates = await self._leads.candidates(self.conn, keys)
        match = best_match(identity, candidates)
        source = change.record.source
        if match is None:
            return None
        self.result.quality[(source, "leads_duplicate")] += 1
        own_id = proposed_id(st.key)
        st.id = match.lead_id
        st.status = "merged"
        st.state = fields
        st.stamps = dict.fromkeys(fields, ms)
        st.dirty = True
        self._refs[st.key] = match.lead_id
        event_id = self._emit(
            change,
            "lead.merged",
            own_id,
            {"merged_into_id": str(match.lead_id), "rule": match.rule, "score": match.score},
            key=match.lead_id,
        )
        return Outcome("merged", match.lead_id, (event_id,))

    def _index_lead(self, lead_id: UUID, fields: Mapping[str, Any]) -> None:
        identity = _identity(fields)
        self._leads.set(
            lead_id, blocking_keys(identity), {f: getattr(identity, f) for f in IDENTITY_FIELDS}
        )

    async def _update(self, change: Change, st: RecordState) -> Outcome:
        assert change.mapped is not None
        rec = change.record
        ms = _ms(rec.occurred_at)
        changed: dict[str, Any] = {}
        owner = change.mapped.fields.get("owner_source_id")
        if owner is not None and owner == st.state.get("_writeback_owner"):
            self.result.quality[(rec.source, "writeback_echoes")] += 1
            st.state.pop("_writeback_owner")
            st.dirty = True
        for fname, value in change.mapped.fields.items():
            if ms < st.stamps.get(fname, 0):
                continue  # a newer change already set this field
            st.stamps[fname] = ms
            st.dirty = True
            if st.state.get(fname) != value:
                changed[fname] = value
                st.state[fname] = value
        self._count_quality(change, created=False)
        outcome_ids = []
        if change.kind == "deal":
            outcome_ids = self._deal_outcome(change, st, changed, payload_base=changed)
            if outcome_ids:
                return Outcome("accepted", st.id, tuple(outcome_ids))
        lifecycle = change.forced_type in LIFECYCLE and st.state.get("_lifecycle") != (
            change.forced_type
        )
        if lifecycle:
            st.state["_lifecycle"] = change.forced_type
            st.dirty = True
        if not changed and not lifecycle:
            return Outcome("unchanged", st.id)
        if change.kind == "activity":
            # Activities are facts logged once; later edits are kept, not re-announced.
            return Outcome("unchanged", st.id)
        type_name = f"{change.kind}.updated"
        if change.kind == "deal" and "stage" in changed:
            type_name = "deal.stage_changed"
        if change.forced_type and not change.forced_type.endswith((".created", ".logged")):
            type_name = change.forced_type
        payload = self._canonical(change, changed)
        event_id = self._emit(change, type_name, st.id, payload)
        if change.kind == "lead" and st.status == "live" and changed.keys() & set(IDENTITY_FIELDS):
            self._index_lead(st.id, st.state)
        return Outcome("accepted", st.id, (event_id,))

    def _deal_outcome(
        self,
        change: Change,
        st: RecordState,
        fields: dict[str, Any],
        *,
        payload_base: dict[str, Any],
    ) -> list[UUID]:
        """deal.won / deal.lost when the stage (or a client's declared type) closes the deal."""
        assert change.mapped is not None
        outcome = change.mapped.outcome
        if change.forced_type in ("deal.won", "deal.lost"):
            outcome = "won" if change.forced_type == "deal.won" else "lost"
        if outcome is None or outcome == st.outcome:
            if outcome is None and "stage" in fields and st.outcome is not None:
                st.outcome = None  # re-opened
                st.dirty = True
            return []
        st.outcome = outcome
        st.dirty = True
        if not st.state.get("closed_at"):
            st.state["closed_at"] = change.record.occurred_at.isoformat()
        payload = self._canonical(change, payload_base)
        payload.setdefault("stage", st.state.get("stage"))
        payload.setdefault("amount", st.state.get("amount"))
        payload.setdefault("currency", st.state.get("currency"))
        payload["closed_at"] = st.state["closed_at"]
        return [self._emit(change, f"deal.{outcome}", st.id, payload)]

    def _delete(self, change: Change, st: RecordState) -> Outcome:
        if st.status == "deleted":
            return Outcome("unchanged", st.id)
        was = st.status
        st.status = "deleted"
        st.dirty = True
        if was == "referenced":
            return Outcome("unchanged", st.id)
        event_id = self._emit(change, f"{change.kind}.deleted", st.id, {})
        return Outcome("accepted", st.id, (event_id,))

    def _erase(self, st: RecordState) -> Outcome:
        """A privacy deletion: the lead is erased (``service_layer.erasure``) once the batch's
        state is saved; the lead stays, and a lead never seen has nothing to erase."""
        if st.status == "referenced":
            return Outcome("unchanged", st.id)
        self._erasures.append(st.id)
        self._leads.set(st.id, [], None)
        return Outcome("accepted", st.id, (erasure_event_id(st.id),))

    async def _crm_merge(self, change: Change, st: RecordState) -> Outcome:
        """The CRM merged this record into another: it lives on as the survivor."""
        rec = change.record
        assert rec.merged_into is not None
        survivor = self._states[RecordKey(change.kind, rec.source, rec.tenant, rec.merged_into)]
        if st.status == "merged" and st.id == survivor.id:
            return Outcome("unchanged", st.id)
        own_id = st.id
        st.status = "merged" if change.kind == "lead" else "deleted"
        st.id = survivor.id
        st.dirty = True
        if change.kind == "lead":
            self._leads.set(own_id, [], None)
            event_id = self._emit(
                change,
                "lead.merged",
                own_id,
                {"merged_into_id": str(survivor.id), "rule": "crm_merge", "score": 1.0},
                key=survivor.id,
            )
        else:
            event_id = self._emit(change, f"{change.kind}.deleted", own_id, {})
        return Outcome("merged", survivor.id, (event_id,))


def dead_letter_item(record: SourceRecord) -> dict[str, Any]:
    """A record as stored with its dead letter: enough to retry it."""
    return {
        "source": record.source,
        "tenant": record.tenant,
        "object_type": record.object_type,
        "source_id": record.source_id,
        "action": record.action,
        "occurred_at": record.occurred_at.isoformat(),
        "delivery_key": record.delivery_key,
        "properties": dict(record.properties),
        "origin": record.origin,
        "merged_into": record.merged_into,
    }


def prepare(
    records: Sequence[SourceRecord], mappings: Mapping[str, SourceMapping]
) -> tuple[list[Change], list[tuple[SourceRecord, str]]]:
    """Map every record; returns the changes and the records that failed with the reason."""
    changes: list[Change] = []
    failed: list[tuple[SourceRecord, str]] = []
    for record in records:
        mapping = mappings.get(record.source)
        if mapping is None:
            failed.append((record, f"no mapping for source {record.source!r}"))
            continue
        try:
            kind, mapped = map_record(record, mapping)
        except MappingError as exc:
            failed.append((record, str(exc)))
            continue
        changes.append(Change(record=record, kind=kind, mapped=mapped))
    return changes, failed
