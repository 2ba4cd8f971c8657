"""metrics: what the KPI statements read besides the projections' JSON, so that a scrape or a
request aggregates narrow typed columns in PostgreSQL rather than every row in Python.

- Generated columns of the fields the KPIs read (PostgreSQL keeps them with every merge), and
  indexes on the times they filter on.
- ``industry_keys``: each industry name entities carry, with the key a segment reads (trimmed
  and lower-cased as Python does it), so that segments group exactly as the domain names them.
- ``lead_journeys``: per lead with an assignment, its newest assignment (by event time, then
  event id), its first assignment to a rep and its first outbound touch by a rep it was
  assigned to.
- ``deal_stages.kept`` and ``next_stage``: each deal's stage path (entries by time, then event
  id, a repeat of the current stage dropped) and the stage entered next.

The consumer keeps the last three in the transaction that projects the events, so a rebuild
gives them again like every projection. All are filled from what is projected already.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Every value below comes from a validated event model through projection.jsonable: ids are
# canonical UUID strings, amounts decimal strings, dates ISO strings, names strings.
COLUMNS = {
    "deals": {
        "owner_id": "uuid GENERATED ALWAYS AS ((fields->>'owner_id')::uuid) STORED",
        "account_id": "uuid GENERATED ALWAYS AS ((fields->>'account_id')::uuid) STORED",
        "amount": "numeric GENERATED ALWAYS AS ((fields->>'amount')::numeric) STORED",
        "currency": "text GENERATED ALWAYS AS (nullif(fields->>'currency', '')) STORED",
        "stage": "text GENERATED ALWAYS AS (nullif(fields->>'stage', '')) STORED",
        # ISO dates compare as text in date order
        "expected_close": "text GENERATED ALWAYS AS (fields->>'expected_close_date') STORED",
    },
    "accounts": {
        "territory_id": "text GENERATED ALWAYS AS (nullif(fields->>'territory_id', '')) STORED",
        "industry": "text GENERATED ALWAYS AS (nullif(fields->>'industry', '')) STORED",
        "employees": "numeric GENERATED ALWAYS AS (CASE WHEN jsonb_typeof(fields->'employees')"
        " = 'number' AND fields->>'employees' ~ '^-?[0-9]+$' THEN (fields->>'employees')::numeric"
        " END) STORED",
    },
    "leads": {
        "owner_id": "uuid GENERATED ALWAYS AS ((fields->>'owner_id')::uuid) STORED",
        "account_id": "uuid GENERATED ALWAYS AS ((fields->>'account_id')::uuid) STORED",
        "lead_source": "text GENERATED ALWAYS AS (fields->>'lead_source') STORED",
        "industry": "text GENERATED ALWAYS AS (nullif(fields->>'industry', '')) STORED",
        "employees": "numeric GENERATED ALWAYS AS (CASE WHEN jsonb_typeof(fields->'employees')"
        " = 'number' AND fields->>'employees' ~ '^-?[0-9]+$' THEN (fields->>'employees')::numeric"
        " END) STORED",
        "converted": "boolean GENERATED ALWAYS AS (fields->>'converted_at' IS NOT NULL) STORED",
        "created_event_us": "bigint GENERATED ALWAYS AS ((fields->>'created_event_at')::bigint)"
        " STORED",
    },
    "activities": {
        "rep_id": "uuid GENERATED ALWAYS AS ((fields->>'rep_id')::uuid) STORED",
        "outbound": "boolean GENERATED ALWAYS AS (coalesce(fields->>'direction' = 'outbound', "
        "false)) STORED",
        "tool": "text GENERATED ALWAYS AS (lower(trim(fields->>'tool'))) STORED",
    },
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        added = ", ".join(f"ADD COLUMN {name} {kind}" for name, kind in columns.items())
        op.execute(f"ALTER TABLE {table} {added}")
    op.execute("CREATE INDEX leads_created_event ON leads (created_event_us)")
    _industry_keys()
    _lead_journeys()
    _stage_paths()


def _industry_keys() -> None:
    op.execute("CREATE TABLE industry_keys (raw text PRIMARY KEY, key text NOT NULL)")
    found = op.get_bind().execute(
        sa.text("SELECT industry FROM accounts UNION SELECT industry FROM leads")
    )
    # domain.dimensions.industry_key, as it was when this migration was written
    rows = [{"raw": raw, "key": raw.strip().lower()} for (raw,) in found if raw]
    if rows:
        op.get_bind().execute(
            sa.text("INSERT INTO industry_keys (raw, key) VALUES (:raw, :key)"), rows
        )


def _lead_journeys() -> None:
    op.execute(
        """
        CREATE TABLE lead_journeys (
            lead_id          uuid   PRIMARY KEY,
            latest_rep_id    uuid,
            latest_territory text,
            first_to_rep_us  bigint,
            touched_us       bigint,
            touched_by       uuid
        )
        """
    )
    op.execute("CREATE INDEX lead_journeys_first_to_rep ON lead_journeys (first_to_rep_us)")
    # adapters.repository.JOURNEYS, for every lead with an assignment
    op.execute(
        """
        WITH latest AS (
            SELECT DISTINCT ON (x.lead_id) x.lead_id, x.rep_id, x.territory_id
            FROM lead_assignments x
            ORDER BY x.lead_id, x.event_time DESC, x.event_id DESC
        ),
        first_to_rep AS (
            SELECT x.lead_id, (extract(epoch FROM min(x.assigned_at)) * 1000000)::bigint AS us
            FROM lead_assignments x WHERE x.rep_id IS NOT NULL GROUP BY x.lead_id
        ),
        touch AS (
            SELECT DISTINCT ON (t.lead_id) t.lead_id, t.occurred_us AS us, t.rep_id
            FROM activities t
            WHERE t.lead_id IS NOT NULL AND NOT t.deleted AND t.occurred_us IS NOT NULL
              AND t.outbound AND t.rep_id IS NOT NULL
              AND EXISTS (SELECT 1 FROM lead_assignments x
                          WHERE x.lead_id = t.lead_id AND x.rep_id = t.rep_id)
            ORDER BY t.lead_id, t.occurred_us, t.rep_id
        )
        INSERT INTO lead_journeys
        SELECT latest.lead_id, latest.rep_id, latest.territory_id, f.us, t.us, t.rep_id
        FROM latest LEFT JOIN first_to_rep f USING (lead_id) LEFT JOIN touch t USING (lead_id)
        """
    )


def _stage_paths() -> None:
    op.execute(
        "ALTER TABLE deal_stages ADD COLUMN kept boolean NOT NULL DEFAULT false, "
        "ADD COLUMN next_stage text"
    )
    # adapters.repository.STAGE_PATHS, for every deal
    op.execute(
        """
        WITH path AS (
            SELECT event_id, deal_id, stage, entered_at,
                   lag(stage) OVER (PARTITION BY deal_id ORDER BY entered_at, event_id) AS before
            FROM deal_stages
        ),
        kept AS (
            SELECT event_id,
                   lead(stage) OVER (PARTITION BY deal_id ORDER BY entered_at, event_id) AS next
            FROM path WHERE before IS DISTINCT FROM stage
        )
        UPDATE deal_stages s SET kept = true, next_stage = kept.next
        FROM kept WHERE s.event_id = kept.event_id
        """
    )
    op.execute("CREATE INDEX deal_stages_kept ON deal_stages (entered_at) WHERE kept")


def downgrade() -> None:
    op.execute("DROP INDEX deal_stages_kept")
    op.execute("ALTER TABLE deal_stages DROP COLUMN next_stage, DROP COLUMN kept")
    op.execute("DROP TABLE lead_journeys")
    op.execute("DROP TABLE industry_keys")
    op.execute("DROP INDEX leads_created_event")
    for table, columns in COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"DROP COLUMN {c}" for c in columns))
