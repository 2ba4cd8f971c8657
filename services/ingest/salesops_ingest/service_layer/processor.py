"""Turning stored deliveries into canonical events.

Webhooks only store what they receive (so they answer within the CRM's deadline); the
processor reads pending deliveries in order, parses them with their connector, maps,
normalizes and applies them through the pipeline, and marks them processed, all in one
transaction: a crash anywhere leaves the delivery pending and it is processed again, with
the same deterministic event ids. A delivery that keeps failing for a reason other than the
database or broker being down is marked processed with its error and dead-lettered whole.
REST events, CSV rows and records read from a CRM's API are archived as deliveries in the
``records`` format and applied in the request's own transaction, so a replay covers them too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from salesops_common import writes
from salesops_common.aio import wait_event
from salesops_common.inbox import is_transient
from salesops_common.kafka import Topics
from salesops_common.writes import Statement
from salesops_ingest.adapters import deliveries as store
from salesops_ingest.adapters import state as repo
from salesops_ingest.adapters.deliveries import Delivery
from salesops_ingest.domain.mapping import SourceMapping, api_mapping
from salesops_ingest.domain.records import DeadItem, MappingError, SourceRecord
from salesops_ingest.service_layer.pipeline import (
    BatchResult,
    Change,
    Pipeline,
    dead_letter_item,
    map_record,
)

log = logging.getLogger(__name__)

FORMAT_HEADER = "x-salesops-format"
RECORDS_FORMAT = "records"
CANONICAL = "canonical"
MAX_ATTEMPTS = 3

Parser = Callable[[bytes], Iterable[SourceRecord | DeadItem]]


def record_to_json(
    record: SourceRecord,
    *,
    mapping: str,
    forced_type: str | None = None,
    event_id: UUID | None = None,
) -> dict[str, Any]:
    item = dead_letter_item(record)
    item["mapping"] = mapping
    item["sequence"] = record.sequence
    if forced_type:
        item["type"] = forced_type
    if event_id:
        item["event_id"] = str(event_id)
    return item


def record_from_json(item: Mapping[str, Any]) -> SourceRecord:
    return SourceRecord(
        source=item["source"],
        tenant=item["tenant"],
        object_type=item["object_type"],
        source_id=item["source_id"],
        action=item["action"],
        occurred_at=datetime.fromisoformat(item["occurred_at"]),
        delivery_key=item["delivery_key"],
        properties=item.get("properties") or {},
        origin=item.get("origin"),
        merged_into=item.get("merged_into"),
        sequence=int(item.get("sequence") or 0),
    )


@dataclass
class Prepared:
    """A delivery's changes, and what could not become one (with the reason)."""

    changes: list[Change] = field(default_factory=list)
    dead: list[tuple[str, str, Any]] = field(default_factory=list)  # (item key, reason, item)


class Mappings:
    def __init__(self, by_source: Mapping[str, SourceMapping]) -> None:
        self.by_source = dict(by_source)
        self._canonical = {s: api_mapping(s) for s in ("api", "hubspot", "salesforce", "pipedrive")}
        self._canonical["csv"] = by_source.get("csv") or api_mapping("csv")

    def for_record(self, name: str, source: str) -> SourceMapping:
        if name == CANONICAL:
            return self._canonical.get(source) or api_mapping(source)
        found = self.by_source.get(name)
        if found is None:
            raise MappingError(f"no mapping named {name!r}")
        return found


def prepare_records(
    records: Iterable[SourceRecord | DeadItem],
    mappings: Mappings,
    *,
    mapping_name: Callable[[SourceRecord], str],
    extras: Mapping[str, tuple[str | None, UUID | None]] | None = None,
    coerced: bool = False,
) -> Prepared:
    out = Prepared()
    for index, record in enumerate(records):
        if isinstance(record, DeadItem):
            out.dead.append((record.delivery_key or f"item-{index}", record.reason, record.item))
            continue
        clean = _without_nul(record)
        if clean is None:
            out.dead.append((f"item-{index}", "a NUL character in the record's identity", None))
            continue
        record = clean
        try:
            kind, mapped = map_record(
                record,
                mappings.for_record(mapping_name(record), record.source),
                coerced=coerced,
            )
        except MappingError as exc:
            out.dead.append((record.delivery_key, str(exc), dead_letter_item(record)))
            continue
        forced, event_id = (extras or {}).get(record.delivery_key, (None, None))
        out.changes.append(
            Change(record=record, kind=kind, mapped=mapped, forced_type=forced, event_id=event_id)
        )
    return out


def _without_nul(record: SourceRecord) -> SourceRecord | None:
    """NUL cannot be stored in PostgreSQL text: dropped from values, refused in identities."""
    identity = (record.source_id, record.tenant, record.delivery_key, record.object_type)
    if any("\x00" in part for part in identity):
        return None
    if not any(isinstance(v, str) and "\x00" in v for v in record.properties.values()):
        return record
    cleaned = {
        k.replace("\x00", ""): v.replace("\x00", "") if isinstance(v, str) else v
        for k, v in record.properties.items()
    }
    return replace(record, properties=cleaned)


def parse_records_body(body: bytes) -> tuple[list[SourceRecord], dict[str, str], dict[str, Any]]:
    items = orjson.loads(body)
    records = [record_from_json(i) for i in items]
    names = {
        r.delivery_key: i.get("mapping", CANONICAL) for r, i in zip(records, items, strict=True)
    }
    extras = {
        r.delivery_key: (i.get("type"), UUID(i["event_id"]) if i.get("event_id") else None)
        for r, i in zip(records, items, strict=True)
    }
    return records, names, extras


class Processor:
    """Applies deliveries; ``parsers`` maps a delivery format to its connector's parser."""

    def __init__(
        self,
        *,
        dsn: str,
        topics: Topics,
        mappings: Mappings,
        parsers: Mapping[str, Parser],
        batch_deliveries: int = 16,
        on_result: Callable[[BatchResult, Sequence[Delivery]], None] | None = None,
        on_dead: Callable[[str, int], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self.topics = topics
        self.mappings = mappings
        self.parsers = dict(parsers)
        self.batch_deliveries = batch_deliveries
        self._wake = asyncio.Event()
        self._on_result = on_result
        self._on_dead = on_dead
        self.idle = asyncio.Event()

    # -- parsing ------------------------------------------------------------------------

    def prepare(self, delivery: Delivery) -> Prepared:
        fmt = delivery.headers.get(FORMAT_HEADER, delivery.source)
        if fmt == RECORDS_FORMAT:
            records, names, extras = parse_records_body(delivery.body)
            return prepare_records(
                records,
                self.mappings,
                mapping_name=lambda r: names.get(r.delivery_key, CANONICAL),
                extras=extras,
            )
        parser = self.parsers.get(fmt)
        if parser is None:
            return Prepared(dead=[(f"delivery-{delivery.id}", f"no parser for {fmt!r}", None)])
        return prepare_records(
            parser(delivery.body), self.mappings, mapping_name=lambda r: r.source
        )

    # -- applying -----------------------------------------------------------------------

    async def apply(
        self,
        conn: asyncpg.Connection,
        deliveries: Sequence[Delivery],
        *,
        prepared: Sequence[Prepared] | None = None,
    ) -> BatchResult:
        """Apply deliveries in the caller's transaction (dead letters included)."""
        if prepared is None:
            prepared = []
            for delivery in deliveries:
                prepared.append(self.prepare(delivery))
                # Parsing and mapping a delivery is CPU work: let requests in between.
                await asyncio.sleep(0)
        changes: list[Change] = []
        letters: list[tuple[str, int | None, str, str, Any]] = []
        succeeded: list[tuple[str, str]] = []
        replay = any(d.replay for d in deliveries)
        for delivery, prep in zip(deliveries, prepared, strict=True):
            changes.extend(prep.changes)
            for key, reason, item in prep.dead:
                letters.append((delivery.source, delivery.id, key, reason, item))
            succeeded.extend((c.record.source, c.record.delivery_key) for c in prep.changes)
        pipeline = Pipeline(conn, topics=self.topics)
        resolved = repo.resolve_writes(succeeded)
        if letters:
            # A key may be both dead and succeeded in one batch: resolved after it is stored.
            result = await pipeline.apply(changes, dedupe=not replay)
            await repo.record_dead_letters(conn, letters)
            await writes.execute(conn, resolved)
        else:
            result = await pipeline.apply(changes, dedupe=not replay, also=resolved)
        if letters and self._on_dead:
            for source, *_ in letters:
                self._on_dead(source, 1)
        return result

    async def apply_changes(
        self, conn: asyncpg.Connection, changes: Sequence[Change], *, also: Sequence[Statement]
    ) -> BatchResult:
        """Apply ``changes`` prepared by the caller, none dead (REST events: refused whole
        before), in the caller's transaction, like :meth:`apply`; ``also``: the caller's
        writes (its delivery's archive), sent with the last of the pipeline's."""
        resolved = repo.resolve_writes([(c.record.source, c.record.delivery_key) for c in changes])
        pipeline = Pipeline(conn, topics=self.topics)
        return await pipeline.apply(changes, also=[*also, *resolved])

    async def run(self) -> None:
        """Process pending deliveries until cancelled; woken by NOTIFY, polls as a fallback."""
        delay = 0.2
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except Exception as exc:  # noqa: BLE001 - wait for the database to come back
                log.warning("processor cannot connect: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            try:
                await conn.add_listener("ingest_deliveries", self._notified)
                while True:
                    done = await self.run_once(conn)
                    if done == 0:
                        self.idle.set()
                        await self._wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect and go on
                log.warning("processor error: %r; reconnecting", exc)
                await asyncio.sleep(0.5)
            finally:
                conn.terminate()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _wait(self) -> None:
        await wait_event(self._wake, 1.0)
        self._wake.clear()

    async def run_once(self, conn: asyncpg.Connection) -> int:
        """One batch of pending deliveries; returns how many were processed."""
        self.idle.clear()
        try:
            async with conn.transaction():
                batch = await store.claim_pending(conn, self.batch_deliveries)
                if not batch:
                    return 0
                result = await self.apply(conn, batch)
                await store.mark_processed(conn, [d.id for d in batch])
            if self._on_result:
                self._on_result(result, batch)
            return len(batch)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("batch failed (%r); processing its deliveries one by one", exc)
        return await self._one_by_one(conn)

    async def _one_by_one(self, conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            batch = await store.claim_pending(conn, self.batch_deliveries)
        done = 0
        for delivery in batch:
            try:
                async with conn.transaction():
                    claimed = await conn.fetchval(
                        "SELECT id FROM deliveries WHERE id = $1 AND processed_at IS NULL "
                        "FOR UPDATE SKIP LOCKED",
                        delivery.id,
                    )
                    if claimed is None:
                        continue
                    result = await self.apply(conn, [delivery])
                    await store.mark_processed(conn, [delivery.id])
                if self._on_result:
                    self._on_result(result, [delivery])
                done += 1
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self._failed(conn, delivery, exc)
                done += 1
        return done

    async def _failed(self, conn: asyncpg.Connection, delivery: Delivery, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        log.error("delivery %s failed: %s", delivery.id, reason)
        async with conn.transaction():
            attempts = await store.mark_failed_attempt(conn, delivery.id, reason)
            if attempts >= MAX_ATTEMPTS:
                await repo.record_dead_letters(
                    conn,
                    [(delivery.source, delivery.id, f"delivery-{delivery.id}", reason, None)],
                )
                await store.mark_processed(conn, [delivery.id], {delivery.id: reason})
                if self._on_dead:
                    self._on_dead(delivery.source, 1)
