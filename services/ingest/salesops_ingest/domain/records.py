"""What every connector produces: CRM record changes in the CRM's own vocabulary.

A connector (HubSpot, Salesforce, Pipedrive, CSV, the REST API) turns one stored delivery into
:class:`SourceRecord` values: *which* record changed, *how*, and the CRM's properties as sent.
The per-source mapping (``mappings/<source>.yaml``) then turns a record into a
:class:`MappedRecord` in canonical fields, and the pipeline decides which canonical events
that means (created, updated, stage changed, won, lost, merged, deleted) against what ingest
already knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Action = Literal["create", "update", "delete", "erase", "merge", "fetch"]
"""``create``/``update`` carry properties; ``delete`` and ``erase`` (a privacy deletion: the
person's data goes, the lead stays) none; ``merge`` names the surviving
record in ``merged_into``; ``fetch`` says the record changed but the delivery is thin: the
full record must be read from the CRM's API before anything is emitted."""


class MappingError(ValueError):
    """A record that parses but cannot be mapped: it is dead-lettered with this reason."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One change of one CRM record, as the CRM described it.

    ``object_type`` is the CRM's name (``contact``, ``Lead``, ``person``...); the mapping file
    says which canonical kind it is. ``delivery_key`` is the source's delivery identity, unique
    per change (72-hour dedupe). ``origin`` is the CRM's change source (``API``,
    ``INTEGRATION``...), used to recognize ingest's own owner write-backs.
    ``sequence`` orders changes with the same ``occurred_at`` (Salesforce's transaction order).
    """

    source: str
    tenant: str
    object_type: str
    source_id: str
    action: Action
    occurred_at: datetime
    delivery_key: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    origin: str | None = None
    merged_into: str | None = None
    sequence: int = 0
    needs_reread: bool = False  # Salesforce GAP_* events: nothing to apply, re-read the record


@dataclass(frozen=True, slots=True)
class DeadItem:
    """A part of a delivery that cannot become a record (unknown object type, bad shape)."""

    reason: str
    item: Any
    delivery_key: str | None = None


class CrmApi(Protocol):
    """A CRM's REST API, as ingest uses it (one per source; fakes only in unit tests)."""

    source: str

    async def fetch(self, tenant: str, object_type: str, source_id: str) -> SourceRecord | None:
        """The full current record as a ``create`` record, or None if it is gone."""
        ...

    async def list_changed(
        self, tenant: str, object_type: str, cursor: str | None
    ) -> tuple[list[SourceRecord], str | None]:
        """Records modified after ``cursor`` (reconciliation), oldest first, as ``update``
        records carrying full properties, and the cursor to store (None: nothing new)."""
        ...

    async def set_owner(
        self, tenant: str, object_type: str, source_id: str, owner_source_id: str
    ) -> None:
        """Write the owner back; raises :class:`CrmApiError` (``retryable`` says whether)."""
        ...


class CrmApiError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """A record in canonical terms. ``fields`` holds canonical field names, with references
    by source id (``owner_source_id``, ``account_source_id``, ...), values already coerced
    and normalized. ``outcome`` is set when the mapped stage closes a deal."""

    kind: str
    record: SourceRecord
    fields: dict[str, Any]
    outcome: Literal["won", "lost"] | None = None
    issues: tuple[str, ...] = ()  # data-quality flags from normalization
