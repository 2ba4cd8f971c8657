"""metrics: event counts, deal outcomes, assigned leads, outbox and inbox.

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
    op.execute("CREATE TABLE event_counts (type text PRIMARY KEY, count bigint NOT NULL)")
    op.execute(
        """
        CREATE TABLE deal_outcomes (
            deal_id     uuid PRIMARY KEY,
            outcome     text NOT NULL CHECK (outcome IN ('won', 'lost')),
            amount      numeric,
            currency    text,
            owner_id    uuid,
            closed_at   timestamptz,
            event_time  timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE lead_assignments (
            lead_id     uuid PRIMARY KEY,
            rep_id      uuid,
            assigned_at timestamptz,
            event_time  timestamptz NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lead_assignments")
    op.execute("DROP TABLE deal_outcomes")
    op.execute("DROP TABLE event_counts")
    drop_messaging_tables()
