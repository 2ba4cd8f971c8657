"""Per-source mappings: CRM object types, properties and stages to canonical terms.

Each source has a version-controlled YAML file (``salesops_ingest/mappings/<source>.yaml``,
shipped defaults); ``SALESOPS_INGEST_MAPPINGS_DIR`` points at a directory whose files replace
the shipped ones source by source, so a team edits its mapping without a code change. Format::

    source: hubspot
    objects:
      contact:                      # the CRM's object type
        kind: lead                  # canonical kind
        fields: {email: email, hubspot_owner_id: owner_source_id}
        owner_field: hubspot_owner_id
        stage_field: dealstage      # deals: the property holding the stage
    values:                         # optional: canonical field -> CRM value -> canonical value
      type: {CALL: call}
    stages:                         # CRM stage -> canonical stage (+ outcome when it closes)
      closedwon: {stage: Won, outcome: won}

Properties a mapping does not name are ignored (CRMs send many). A record that cannot be
mapped (unknown object type, unknown stage, a value of the wrong type) raises
:class:`MappingError`, and the pipeline dead-letters it with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ValidationError

from salesops_ingest.domain.model import INPUT_MODELS
from salesops_ingest.domain.records import MappedRecord, MappingError, SourceRecord

SHIPPED = Path(__file__).resolve().parent.parent / "mappings"
KINDS = ("lead", "account", "deal", "activity", "rep")
Outcome = Literal["won", "lost"]


@dataclass(frozen=True)
class ObjectMapping:
    object_type: str
    kind: str
    fields: Mapping[str, str]
    owner_field: str | None = None
    stage_field: str | None = None


@dataclass(frozen=True)
class SourceMapping:
    source: str
    objects: Mapping[str, ObjectMapping]
    stages: Mapping[str, tuple[str, Outcome | None]] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    path: str = ""

    def object(self, object_type: str) -> ObjectMapping:
        found = self.objects.get(object_type)
        if found is None:
            raise MappingError(
                f"{self.source} object type {object_type!r} has no mapping "
                f"(mapped: {', '.join(sorted(self.objects))})"
            )
        return found

    def kind_of(self, object_type: str) -> str:
        return self.object(object_type).kind

    def object_types(self, kind: str) -> list[str]:
        return [o.object_type for o in self.objects.values() if o.kind == kind]

    def apply(self, record: SourceRecord) -> MappedRecord:
        """The record's properties in canonical fields, coerced to the canonical types.
        Empty strings mean cleared (CRMs send "" for an emptied property)."""
        obj = self.object(record.object_type)
        raw: dict[str, Any] = {}
        for prop, value in record.properties.items():
            target = obj.fields.get(prop)
            if target is None:
                continue
            if isinstance(value, str):
                value = value.strip()
                if value == "":
                    value = None
            if value is not None and target in self.values:
                table = self.values[target]
                if value in table:
                    value = table[value]
                elif isinstance(value, str) and value.lower() in table:
                    value = table[value.lower()]
            raw[target] = value
        outcome: Outcome | None = None
        if obj.stage_field and "stage" in raw and raw["stage"] is not None:
            stage_value = str(raw["stage"])
            mapped = self.stages.get(stage_value)
            if mapped is None:
                raise MappingError(
                    f"{self.source} stage {stage_value!r} has no mapping in {self.path}"
                )
            raw["stage"], outcome = mapped
        fields = _coerce(obj.kind, raw, record)
        return MappedRecord(kind=obj.kind, record=record, fields=fields, outcome=outcome)


def _coerce(kind: str, raw: dict[str, Any], record: SourceRecord) -> dict[str, Any]:
    model: type[BaseModel] = INPUT_MODELS[kind]
    for key, value in raw.items():
        if isinstance(value, int | float) and key.endswith("_source_id"):
            raw[key] = str(value)
    try:
        parsed = model.model_validate({"source_id": record.source_id, **raw})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise MappingError(f"{record.source} {record.object_type}: {problems}") from None
    dumped = parsed.model_dump(mode="json", exclude_unset=True)
    dumped.pop("source_id", None)
    return dumped


def _load(path: Path) -> SourceMapping:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or "source" not in doc or "objects" not in doc:
        raise ValueError(f"{path}: a mapping needs 'source' and 'objects'")
    objects: dict[str, ObjectMapping] = {}
    for object_type, spec in (doc.get("objects") or {}).items():
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{path}: {object_type}: kind must be one of {KINDS}")
        fields = {str(k): str(v) for k, v in (spec.get("fields") or {}).items() if v}
        allowed = set(INPUT_MODELS[kind].model_fields)
        unknown = sorted(set(fields.values()) - allowed)
        if unknown:
            raise ValueError(f"{path}: {object_type}: unknown canonical fields {unknown}")
        objects[str(object_type)] = ObjectMapping(
            object_type=str(object_type),
            kind=kind,
            fields=fields,
            owner_field=spec.get("owner_field"),
            stage_field=spec.get("stage_field"),
        )
    stages: dict[str, tuple[str, Outcome | None]] = {}
    for value, spec in (doc.get("stages") or {}).items():
        spec = spec if isinstance(spec, dict) else {"stage": spec}
        outcome = spec.get("outcome")
        if outcome not in (None, "won", "lost"):
            raise ValueError(f"{path}: stage {value!r}: outcome must be won or lost")
        stages[str(value)] = (str(spec["stage"]), cast(Outcome | None, outcome))
    values = {
        str(f): {str(k): v for k, v in (table or {}).items()}
        for f, table in (doc.get("values") or {}).items()
    }
    return SourceMapping(
        source=str(doc["source"]), objects=objects, stages=stages, values=values, path=str(path)
    )


@lru_cache(maxsize=16)
def load_mappings(directory: str | None = None) -> dict[str, SourceMapping]:
    """Shipped mappings, each replaced by a same-named file in ``directory`` if present."""
    found: dict[str, SourceMapping] = {}
    for path in sorted(SHIPPED.glob("*.yaml")):
        found[path.stem] = _load(path)
    override = directory or os.environ.get("SALESOPS_INGEST_MAPPINGS_DIR")
    if override:
        for path in sorted(Path(override).glob("*.yaml")):
            found[path.stem] = _load(path)
    return found


def api_mapping(source: str) -> SourceMapping:
    """Sources that already speak canonical fields (the REST API): identity mappings."""
    objects = {
        kind: ObjectMapping(
            object_type=kind,
            kind=kind,
            fields={f: f for f in INPUT_MODELS[kind].model_fields if f != "source_id"},
        )
        for kind in KINDS
    }
    return SourceMapping(source=source, objects=objects)
