"""metrics: events by type, deal outcomes, lead assignments, outbox and inbox.

Every table is a projection of the event stream: replaying the topics into an empty
database gives the same rows.

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
        CREATE TABLE event_counts (
            type   text   PRIMARY KEY,
            count  bigint NOT NULL
        )
        """
    )
    # One row per deal with an outcome: amount, currency, owner and closed_at are kept so that
    # windows (closed_at) and group_by (owner, currency) can be computed from this same table.
    op.execute(
        """
        CREATE TABLE deal_outcomes (
            deal_id     uuid        PRIMARY KEY,
            outcome     text        NOT NULL CHECK (outcome IN ('won', 'lost')),
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
            lead_id     uuid        PRIMARY KEY,
            rep_id      uuid,
            assigned_at timestamptz NOT NULL,
            event_time  timestamptz NOT NULL,
            reached_rep boolean     NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE lead_assignments")
    op.execute("DROP TABLE deal_outcomes")
    op.execute("DROP TABLE event_counts")
    drop_messaging_tables()
