"""ingest: raw deliveries, delivery dedupe window, record state, duplicate-lead keys,
dead letters, CRM fetch queue, sync cursors and owner write-backs.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every accepted webhook delivery, kept as received: the archive that replays read.
    # processed_at NULL means the processor still owes it.
    op.execute(
        """
        CREATE TABLE deliveries (
            id           bigserial PRIMARY KEY,
            source       text NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            headers      jsonb NOT NULL,
            body         bytea NOT NULL,
            items        integer NOT NULL,
            processed_at timestamptz,
            replay       boolean NOT NULL DEFAULT false,
            attempts     integer NOT NULL DEFAULT 0,
            error        text
        )
        """
    )
    op.execute("CREATE INDEX deliveries_pending ON deliveries (id) WHERE processed_at IS NULL")
    op.execute("CREATE INDEX deliveries_received_at ON deliveries USING brin (received_at)")
    op.execute(
        """
        CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('ingest_deliveries', ''); RETURN NULL; END $$
        """
    )
    op.execute(
        "CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries "
        "FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify()"
    )
    # Each change's delivery identity, for the dedupe window (pruned after it).
    op.execute(
        """
        CREATE TABLE seen_deliveries (
            source   text NOT NULL,
            key      text NOT NULL,
            seen_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, key)
        )
        """
    )
    op.execute("CREATE INDEX seen_deliveries_seen_at ON seen_deliveries USING brin (seen_at)")
    # What ingest knows of each CRM record: canonical fields (references by source id), the
    # CRM time each field was last set (out-of-order updates never overwrite newer values),
    # and whether it is live. id is the canonical id: a merged duplicate points at the lead
    # it was merged into.
    op.execute(
        """
        ALTER TABLE entities
            ADD COLUMN state       jsonb,
            ADD COLUMN stamps      jsonb,
            ADD COLUMN status      text NOT NULL DEFAULT 'referenced'
                CHECK (status IN ('referenced', 'live', 'merged', 'deleted')),
            ADD COLUMN outcome     text,
            ADD COLUMN object_type text,
            ADD COLUMN updated_at  timestamptz
        """
    )
    op.execute("UPDATE entities SET status = 'live'")
    op.execute("CREATE INDEX entities_id ON entities (id)")
    # Blocking keys of live canonical leads, for duplicate detection.
    op.execute(
        """
        CREATE TABLE lead_keys (
            key_type  text NOT NULL,
            value     text NOT NULL,
            lead_id   uuid NOT NULL,
            identity  jsonb NOT NULL,
            PRIMARY KEY (key_type, value, lead_id)
        )
        """
    )
    op.execute("CREATE INDEX lead_keys_lead ON lead_keys (lead_id)")
    op.execute(
        """
        CREATE TABLE dead_letters (
            id           bigserial PRIMARY KEY,
            source       text NOT NULL,
            delivery_id  bigint,
            item_key     text NOT NULL,
            reason       text NOT NULL,
            item         jsonb NOT NULL,
            status       text NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'resolved')),
            attempts     integer NOT NULL DEFAULT 1,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, item_key)
        )
        """
    )
    op.execute("CREATE INDEX dead_letters_open ON dead_letters (id) WHERE status = 'open'")
    # Records to read in full from the CRM API (thin creation events, GAP events).
    op.execute(
        """
        CREATE TABLE fetch_jobs (
            source       text NOT NULL,
            tenant       text NOT NULL,
            object_type  text NOT NULL,
            source_id    text NOT NULL,
            attempts     integer NOT NULL DEFAULT 0,
            due_at       timestamptz NOT NULL DEFAULT now(),
            last_error   text,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, tenant, object_type, source_id)
        )
        """
    )
    op.execute("CREATE INDEX fetch_jobs_due ON fetch_jobs (due_at)")
    op.execute(
        """
        CREATE TABLE sync_cursors (
            source       text NOT NULL,
            tenant       text NOT NULL,
            object_type  text NOT NULL,
            cursor       text,
            synced_at    timestamptz,
            records      bigint NOT NULL DEFAULT 0,
            last_error   text,
            PRIMARY KEY (source, tenant, object_type)
        )
        """
    )
    # Data-quality tallies per source, for the rate gauges.
    op.execute(
        """
        CREATE TABLE quality_counts (
            source  text NOT NULL,
            metric  text NOT NULL,
            count   bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (source, metric)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE writebacks (
            event_id        uuid PRIMARY KEY,
            lead_id         uuid NOT NULL,
            rep_id          uuid,
            source          text NOT NULL,
            tenant          text NOT NULL,
            object_type     text NOT NULL,
            source_id       text NOT NULL,
            owner_source_id text,
            status          text NOT NULL
                CHECK (status IN ('pending', 'done', 'failed', 'skipped')),
            attempts        integer NOT NULL DEFAULT 0,
            due_at          timestamptz NOT NULL DEFAULT now(),
            detail          text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX writebacks_due ON writebacks (due_at) WHERE status = 'pending'")
    op.execute("CREATE INDEX writebacks_lead ON writebacks (lead_id, created_at)")


def downgrade() -> None:
    for table in (
        "writebacks",
        "quality_counts",
        "sync_cursors",
        "fetch_jobs",
        "dead_letters",
        "lead_keys",
        "seen_deliveries",
        "deliveries",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP FUNCTION deliveries_notify() CASCADE")
    op.execute(
        "ALTER TABLE entities DROP COLUMN state, DROP COLUMN stamps, DROP COLUMN status, "
        "DROP COLUMN outcome, DROP COLUMN object_type, DROP COLUMN updated_at"
    )
    op.execute("DROP INDEX IF EXISTS entities_id")
