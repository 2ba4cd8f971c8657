"""Duplicate-lead keys by phone or domain *and* name (issue 7's soak).

A lead was indexed under ``("phone", p)`` and ``("domain", d)``, and a new lead read every
lead under its domain: its cost grew with the company's leads (a 20-minute soak slowed from
285 ms to 227 s). Now :func:`salesops_ingest.domain.matching.blocking_keys` qualifies the
phone and the domain by the last name's spellings and the two names
(``phone_name``/``phone_names``, ``domain_name``/``domain_names``), and a lead without both
names has no phone or domain key (no rule could match it by them). The leads indexed under
the old keys are indexed again from the identity stored with them; their e-mail keys stay.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from salesops_ingest.domain.matching import LeadIdentity, blocking_keys

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHUNK = 5000
_FIELDS = tuple(LeadIdentity.__dataclass_fields__)
_INSERT = sa.text(
    """
    INSERT INTO lead_keys (key_type, value, lead_id, identity)
    SELECT t, v, CAST(l AS uuid), CAST(i AS jsonb)
    FROM unnest(CAST(:t AS text[]), CAST(:v AS text[]), CAST(:l AS text[]),
                CAST(:i AS text[])) AS k(t, v, l, i)
    ON CONFLICT DO NOTHING
    """
)


def _identity(value: Any) -> dict[str, Any]:
    doc = orjson.loads(value) if isinstance(value, str | bytes) else dict(value)
    return {f: doc.get(f) for f in _FIELDS}


def upgrade() -> None:
    bind = op.get_bind()
    leads = bind.execute(
        sa.text(
            "SELECT DISTINCT ON (lead_id) lead_id, identity FROM lead_keys "
            "WHERE key_type IN ('phone', 'domain') ORDER BY lead_id"
        )
    ).all()
    op.execute("DELETE FROM lead_keys WHERE key_type IN ('phone', 'domain')")
    for start in range(0, len(leads), _CHUNK):
        rows: list[tuple[str, str, str, str]] = []
        for lead_id, raw in leads[start : start + _CHUNK]:
            identity = _identity(raw)
            doc = orjson.dumps(identity).decode()
            rows.extend(
                (t, v, str(lead_id), doc)
                for t, v in blocking_keys(LeadIdentity(**identity))
                if t != "email"  # kept as they were
            )
        if rows:
            t, v, ids, docs = (list(col) for col in zip(*rows, strict=True))
            bind.execute(_INSERT, {"t": t, "v": v, "l": ids, "i": docs})


def downgrade() -> None:
    # The old keys of every live lead, from its state (the leads without names had none
    # under the new keys).
    op.execute(
        "DELETE FROM lead_keys WHERE key_type IN "
        "('phone_name', 'phone_names', 'domain_name', 'domain_names')"
    )
    identity = ", ".join(f"'{f}', e.state->'{f}'" for f in _FIELDS)
    op.execute(
        f"""
        INSERT INTO lead_keys (key_type, value, lead_id, identity)
        SELECT k.key_type, k.value, e.id, jsonb_build_object({identity})
        FROM entities e,
             LATERAL (VALUES ('phone', e.state->>'phone'), ('domain', e.state->>'domain'))
                 AS k(key_type, value)
        WHERE e.kind = 'lead' AND e.status = 'live' AND k.value IS NOT NULL
          AND (k.key_type = 'domain' OR k.value ~ '^\\+[0-9]+$')
        ON CONFLICT DO NOTHING
        """
    )
