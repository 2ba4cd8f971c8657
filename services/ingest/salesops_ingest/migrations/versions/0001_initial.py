"""ingest: entity registry, received events, idempotency keys, outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from salesops_common.messaging_schema import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables()
    op.execute(
        """
        CREATE TABLE entities (
            id          uuid NOT NULL,
            kind        text NOT NULL,
            source      text NOT NULL,
            tenant      text NOT NULL,
            source_id   text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, source, tenant, source_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE received_events (
            event_id        uuid PRIMARY KEY,
            source          text NOT NULL,
            tenant          text NOT NULL,
            source_event_id text NOT NULL,
            type            text NOT NULL,
            entity_id       uuid NOT NULL,
            occurred_at     timestamptz NOT NULL,
            received_at     timestamptz NOT NULL DEFAULT now(),
            payload         jsonb NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX received_events_received_at ON received_events USING brin (received_at)"
    )
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key          text PRIMARY KEY,
            request_hash text NOT NULL,
            status       integer NOT NULL,
            response     jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
    op.execute("DROP TABLE received_events")
    op.execute("DROP TABLE entities")
    drop_messaging_tables()
