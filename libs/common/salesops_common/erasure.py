"""The erasure contract (``lead.erased``): which fields of a lead are personal, and how a stored
JSON document that may hold them (an archived delivery, an event payload, a notification) is
redacted.

Every service nulls :data:`PERSONAL_FIELDS` in the lead's own rows. Documents that hold the
values in other shapes (a CRM's webhook body, an explanation, a message to a team) are redacted
by value: every string leaf that *is* one of the person's values, compared as a
:func:`fingerprint` (case, punctuation, a URL's scheme and ``www.`` ignored; phone numbers by
their digits), becomes null. A string that merely contains a value is left alone, so another
record's text in the same document is not touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PERSONAL_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "website",
    "postal_code",
)
_PHONE_CHARS = frozenset("0123456789 +-().x/")
_MIN_PHONE_DIGITS = 7


def fingerprint(value: str) -> str:
    """``value`` compared loosely: case-folded, alphanumerics only, a URL without its scheme,
    ``www.`` and trailing slash."""
    text = value.strip().casefold()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.removeprefix("www.").rstrip("/")
    return "".join(ch for ch in text if ch.isalnum())


def _phone_digits(value: str) -> str | None:
    text = value.strip()
    if not text or not set(text) <= _PHONE_CHARS:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits if len(digits) >= _MIN_PHONE_DIGITS else None


@dataclass(frozen=True)
class PersonalValues:
    """One person's values, as the redaction compares them."""

    prints: frozenset[str]
    phones: frozenset[str]

    @classmethod
    def of(cls, records: Iterable[Mapping[str, Any]]) -> PersonalValues:
        """The personal values of ``records`` (canonical fields: one lead's rows), with the
        full name both ways round (CRMs that keep one name field)."""
        prints: set[str] = set()
        phones: set[str] = set()
        for fields in records:
            values = {f: fields.get(f) for f in PERSONAL_FIELDS}
            texts = [v for v in values.values() if isinstance(v, str) and v.strip()]
            first, last = values["first_name"], values["last_name"]
            if isinstance(first, str) and isinstance(last, str):
                texts += [f"{first} {last}", f"{last} {first}", f"{last}, {first}"]
            prints.update(p for p in map(fingerprint, texts) if p)
            if isinstance(phone := values["phone"], str) and (digits := _phone_digits(phone)):
                phones.add(digits)
        return cls(frozenset(prints), frozenset(phones))

    def __bool__(self) -> bool:
        return bool(self.prints or self.phones)

    def matches(self, text: str) -> bool:
        if fingerprint(text) in self.prints:
            return True
        digits = _phone_digits(text)
        if digits is None:
            return False
        return any(digits.endswith(p[-9:]) or p.endswith(digits[-9:]) for p in self.phones)


def redact(document: Any, values: PersonalValues) -> tuple[Any, bool]:
    """``document`` with every string leaf that is one of ``values`` nulled, and whether
    anything was."""
    if isinstance(document, str):
        return (None, True) if values.matches(document) else (document, False)
    if isinstance(document, list):
        items = [redact(item, values) for item in document]
        return [i for i, _ in items], any(c for _, c in items)
    if isinstance(document, dict):
        pairs = {k: redact(v, values) for k, v in document.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    return document, False


def names(document: Any, ids: frozenset[str]) -> bool:
    """Whether ``document`` holds one of ``ids`` as a value (a string, or an integer id)."""
    if isinstance(document, bool):
        return False
    if isinstance(document, str | int):
        return str(document) in ids
    if isinstance(document, list):
        return any(names(item, ids) for item in document)
    if isinstance(document, dict):
        return any(names(v, ids) for v in document.values())
    return False


def redact_items(document: Any, values: PersonalValues, ids: frozenset[str]) -> tuple[Any, bool]:
    """Redact only the parts of ``document`` that name the record: each item of a top-level
    array (a batch of CRM events or records) that holds one of ``ids``; a single object when
    it holds one."""
    if isinstance(document, list):
        out, changed = [], False
        for item in document:
            if names(item, ids):
                item, item_changed = redact(item, values)
                changed |= item_changed
            out.append(item)
        return out, changed
    if names(document, ids):
        return redact(document, values)
    return document, False


def nulled(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with every personal field present set to null."""
    return {k: (None if k in PERSONAL_FIELDS else v) for k, v in fields.items()}


def null_personal_sql(column: str, param: str) -> str:
    """SQL: the jsonb ``column`` with each personal field it holds set to null, the field
    names given as the text array parameter ``param`` (:data:`PERSONAL_FIELDS`). A row
    holding none is unchanged; pair it with ``WHERE column ?| param``."""
    return (
        f"{column} || coalesce((SELECT jsonb_object_agg(k, 'null'::jsonb) "
        f"FROM jsonb_object_keys({column}) AS k WHERE k = ANY({param})), '{{}}'::jsonb)"
    )
