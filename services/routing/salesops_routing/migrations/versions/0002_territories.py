"""routing: rulesets, leads and accounts as routing sees them, rotation positions, assignment
history, SLA timers, first touches, notifications.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _reps_and_rulesets() -> None:
    # Routing-only attributes, set over REST; the CRM's rep events never carry them.
    op.execute(
        """
        ALTER TABLE reps
            ADD COLUMN working_hours     jsonb,
            ADD COLUMN capacity_per_day  integer CHECK (capacity_per_day >= 0),
            ADD COLUMN capacity_per_week integer CHECK (capacity_per_week >= 0),
            ADD COLUMN out_of_office     jsonb NOT NULL DEFAULT '[]'
        """
    )
    # Every accepted version of the territory model; the newest is the one in force.
    op.execute(
        """
        CREATE TABLE rulesets (
            version    integer PRIMARY KEY,
            body       jsonb NOT NULL,
            digest     text NOT NULL,
            comment    text,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def _leads_and_accounts() -> None:
    # What a lead said when it was created: the input of replays and of reassignments.
    op.execute(
        """
        CREATE TABLE leads (
            id          uuid PRIMARY KEY,
            attributes  jsonb NOT NULL,
            created_at  timestamptz,
            received_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX leads_received ON leads (received_at)")
    op.execute(
        """
        CREATE TABLE accounts (
            id              uuid PRIMARY KEY,
            name            text,
            name_norm       text,
            name_key        text,
            domain          text,
            owner_id        uuid,
            attributes      jsonb NOT NULL DEFAULT '{}',
            territory_id    text,
            ruleset_version integer,
            deleted         boolean NOT NULL DEFAULT false,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX accounts_domain ON accounts (domain) WHERE NOT deleted")
    op.execute("CREATE INDEX accounts_name_key ON accounts (name_key) WHERE NOT deleted")


def _rotation_and_history() -> None:
    # Stride rotation: the territory's clock, and each member's position on it.
    op.execute("ALTER TABLE rotations ADD COLUMN virtual_time double precision NOT NULL DEFAULT 0")
    op.execute(
        """
        CREATE TABLE rotation_members (
            territory_id text NOT NULL,
            rep_id       uuid NOT NULL,
            position     double precision NOT NULL,
            PRIMARY KEY (territory_id, rep_id)
        )
        """
    )
    # status: open until the lead is converted, disqualified, deleted or merged
    # (least-loaded counts open leads).
    op.execute(
        """
        ALTER TABLE assignments
            ALTER COLUMN territory_id DROP NOT NULL,
            ADD COLUMN status text NOT NULL DEFAULT 'open',
            ADD COLUMN reassignments integer NOT NULL DEFAULT 0,
            ADD COLUMN previous_rep_id uuid
        """
    )
    op.execute("CREATE INDEX assignments_open ON assignments (rep_id) WHERE status = 'open'")
    op.execute(
        "CREATE INDEX assignments_queued ON assignments (assigned_at) "
        "WHERE rep_id IS NULL AND status = 'open'"
    )
    # Every decision, first and later ones: capacity counts and the audit trail.
    op.execute(
        """
        CREATE TABLE assignment_history (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            lead_id      uuid NOT NULL,
            kind         text NOT NULL CHECK (kind IN ('assigned', 'reassigned')),
            rep_id       uuid,
            territory_id text,
            strategy     text NOT NULL,
            reason       text NOT NULL,
            event_id     uuid NOT NULL,
            assigned_at  timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX assignment_history_rep ON assignment_history (rep_id, assigned_at)")
    op.execute("CREATE INDEX assignment_history_lead ON assignment_history (lead_id, id)")


def _sla_and_notifications() -> None:
    op.execute(
        """
        CREATE TABLE sla_timers (
            lead_id      uuid PRIMARY KEY,
            rep_id       uuid NOT NULL,
            territory_id text,
            attempt      integer NOT NULL DEFAULT 0,  -- reassignments for this SLA so far
            max_reassignments integer NOT NULL,
            assigned_at  timestamptz NOT NULL,
            due_at       timestamptz NOT NULL,
            state        text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'met', 'breached', 'cancelled')),
            met_at       timestamptz
        )
        """
    )
    op.execute("CREATE INDEX sla_timers_due ON sla_timers (due_at) WHERE state = 'pending'")
    # The earliest outbound activity of each rep on each lead, whenever it arrives.
    op.execute(
        """
        CREATE TABLE first_touches (
            lead_id     uuid NOT NULL,
            rep_id      uuid NOT NULL,
            occurred_at timestamptz NOT NULL,
            PRIMARY KEY (lead_id, rep_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE notification_channels (
            team       text PRIMARY KEY,
            url        text NOT NULL,
            events     text[] NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE notifications (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            team            text NOT NULL,
            kind            text NOT NULL,
            payload         jsonb NOT NULL,
            state           text NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sent', 'failed')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error      text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            sent_at         timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending'"
    )


def upgrade() -> None:
    _reps_and_rulesets()
    _leads_and_accounts()
    _rotation_and_history()
    _sla_and_notifications()


def downgrade() -> None:
    for table in (
        "notifications",
        "notification_channels",
        "first_touches",
        "sla_timers",
        "assignment_history",
        "rotation_members",
        "accounts",
        "leads",
        "rulesets",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP INDEX assignments_open")
    op.execute("DROP INDEX assignments_queued")
    op.execute(
        "ALTER TABLE assignments DROP COLUMN status, DROP COLUMN reassignments, "
        "DROP COLUMN previous_rep_id"
    )
    op.execute("ALTER TABLE rotations DROP COLUMN virtual_time")
    op.execute(
        "ALTER TABLE reps DROP COLUMN working_hours, DROP COLUMN capacity_per_day, "
        "DROP COLUMN capacity_per_week, DROP COLUMN out_of_office"
    )
