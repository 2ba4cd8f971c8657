"""routing: rep roster, rotations, assignments, withdrawn leads, outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from salesops_common.messaging_schema import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create_roster() -> None:
    # turn: the insertion sequence, a rep's fixed place in rotation order. Identity values
    # are drawn on every upsert but kept only by the first insert, so the place never moves.
    # active defaults to true: CRMs report a deactivation, not that a new user is active.
    op.execute(
        """
        CREATE TABLE reps (
            id          uuid PRIMARY KEY,
            turn        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            name        text,
            email       text,
            active      boolean NOT NULL DEFAULT true,
            role        text,
            team        text,
            time_zone   text,
            manager_id  uuid,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def _create_routing_state() -> None:
    # One rotation per territory; its row is the lock that serializes the territory's
    # assignments across every copy of the service.
    op.execute(
        """
        CREATE TABLE rotations (
            territory_id text PRIMARY KEY,
            last_turn    bigint,
            updated_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO rotations (territory_id) VALUES ('default')")
    # The current assignment of each lead: a lead is assigned once (reassignment will
    # update the row and keep history elsewhere).
    op.execute(
        """
        CREATE TABLE assignments (
            lead_id         uuid PRIMARY KEY,
            rep_id          uuid,
            territory_id    text NOT NULL,
            strategy        text NOT NULL,
            ruleset_version integer NOT NULL,
            reason          text NOT NULL,
            explanation     jsonb NOT NULL,
            event_id        uuid NOT NULL,
            assigned_at     timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX assignments_rep ON assignments (rep_id)")
    # Leads that must never be routed, whenever their lead.created arrives.
    op.execute(
        """
        CREATE TABLE withdrawn_leads (
            lead_id        uuid PRIMARY KEY,
            reason         text NOT NULL CHECK (reason IN ('merged', 'deleted')),
            merged_into_id uuid,
            withdrawn_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def upgrade() -> None:
    create_messaging_tables()
    _create_roster()
    _create_routing_state()


def downgrade() -> None:
    op.execute("DROP TABLE withdrawn_leads")
    op.execute("DROP TABLE assignments")
    op.execute("DROP TABLE rotations")
    op.execute("DROP TABLE reps")
    drop_messaging_tables()
