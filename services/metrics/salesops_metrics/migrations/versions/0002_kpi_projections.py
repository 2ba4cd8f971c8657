"""metrics: the KPI projections, the event log they are rebuilt from, quotas and rates.

Entities (reps, accounts, leads, deals, activities) are kept as ``fields`` merged field by
field, newest event time first (``stamps`` holds each field's event time in microseconds):
events may arrive in any order and the result is the same. Times the KPIs filter on are
generated columns (microseconds since the epoch, so that the expressions stay immutable).
Facts that happen once (assignments, breaches, stage entries, merges, forecasts) are rows
keyed by event id. ``deal_outcomes`` and ``lead_assignments`` of 0001 are replaced, and 0001
logged no events: a database that held some is filled again by replaying the topics into a
new one (docs/metrics.md).

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _us(field: str) -> str:
    return f"(fields->>'{field}')::bigint"


_ENTITY = """
    fields  jsonb NOT NULL DEFAULT '{}',
    stamps  jsonb NOT NULL DEFAULT '{}',
    deleted boolean GENERATED ALWAYS AS (coalesce((fields->>'deleted')::boolean, false)) STORED
"""


def upgrade() -> None:
    op.execute("DROP TABLE deal_outcomes")
    op.execute("DROP TABLE lead_assignments")
    op.execute(
        """
        CREATE TABLE event_log (
            seq      bigserial   PRIMARY KEY,
            event_id uuid        NOT NULL UNIQUE,
            type     text        NOT NULL,
            source   text        NOT NULL,
            subject  text        NOT NULL,
            key      text,
            time     timestamptz NOT NULL,
            data     jsonb       NOT NULL
        )
        """
    )
    op.execute(f"CREATE TABLE reps (rep_id uuid PRIMARY KEY, {_ENTITY})")
    op.execute(f"CREATE TABLE accounts (account_id uuid PRIMARY KEY, {_ENTITY})")
    op.execute(
        f"""
        CREATE TABLE leads (
            lead_id    uuid PRIMARY KEY,
            {_ENTITY},
            created_us bigint GENERATED ALWAYS AS
                (coalesce({_us("created_at")}, {_us("created_event_at")})) STORED,
            merged     boolean GENERATED ALWAYS AS (fields->>'merged_into_id' IS NOT NULL) STORED
        )
        """
    )
    op.execute("CREATE INDEX leads_created ON leads (created_us)")
    op.execute(
        f"""
        CREATE TABLE deals (
            deal_id    uuid PRIMARY KEY,
            {_ENTITY},
            lead_id    uuid GENERATED ALWAYS AS ((fields->>'lead_id')::uuid) STORED,
            outcome    text GENERATED ALWAYS AS (fields->>'outcome') STORED,
            created_us bigint GENERATED ALWAYS AS
                (coalesce({_us("created_at")}, {_us("created_event_at")})) STORED,
            close_us   bigint GENERATED ALWAYS AS (
                CASE WHEN fields->>'outcome' IN ('won', 'lost')
                     THEN coalesce({_us("closed_at")}, {_us("outcome_at")}) END) STORED
        )
        """
    )
    op.execute("CREATE INDEX deals_created ON deals (created_us)")
    op.execute("CREATE INDEX deals_closed ON deals (close_us)")
    op.execute("CREATE INDEX deals_lead ON deals (lead_id) WHERE lead_id IS NOT NULL")
    op.execute("CREATE INDEX deals_open ON deals (deal_id) WHERE outcome IS NULL")
    op.execute(
        f"""
        CREATE TABLE activities (
            activity_id uuid PRIMARY KEY,
            {_ENTITY},
            lead_id     uuid GENERATED ALWAYS AS ((fields->>'lead_id')::uuid) STORED,
            occurred_us bigint GENERATED ALWAYS AS
                (coalesce({_us("occurred_at")}, {_us("logged_at")})) STORED
        )
        """
    )
    op.execute("CREATE INDEX activities_lead ON activities (lead_id) WHERE lead_id IS NOT NULL")
    op.execute("CREATE INDEX activities_occurred ON activities (occurred_us)")
    op.execute(
        """
        CREATE TABLE deal_stages (
            event_id   uuid        PRIMARY KEY,
            deal_id    uuid        NOT NULL,
            stage      text        NOT NULL,
            entered_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX deal_stages_deal ON deal_stages (deal_id)")
    op.execute("CREATE INDEX deal_stages_entered ON deal_stages (entered_at)")
    op.execute(
        """
        CREATE TABLE lead_assignments (
            event_id     uuid        PRIMARY KEY,
            lead_id      uuid        NOT NULL,
            rep_id       uuid,
            territory_id text,
            assigned_at  timestamptz NOT NULL,
            event_time   timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX lead_assignments_lead ON lead_assignments (lead_id)")
    op.execute(
        "CREATE INDEX lead_assignments_to_rep ON lead_assignments (assigned_at) "
        "WHERE rep_id IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE sla_breaches (
            event_id    uuid        PRIMARY KEY,
            lead_id     uuid        NOT NULL,
            rep_id      uuid,
            breached_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX sla_breaches_lead ON sla_breaches (lead_id)")
    op.execute(
        """
        CREATE TABLE lead_merges (
            event_id       uuid        PRIMARY KEY,
            lead_id        uuid        NOT NULL,
            merged_into_id uuid        NOT NULL,
            rule           text        NOT NULL,
            event_time     timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX lead_merges_time ON lead_merges (event_time)")
    op.execute(
        """
        CREATE TABLE rulesets (
            version    integer     PRIMARY KEY,
            ruleset    jsonb       NOT NULL,
            event_time timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE forecasts (
            forecast_id uuid        PRIMARY KEY,
            as_of       timestamptz NOT NULL,
            period      text        NOT NULL,
            scope_kind  text        NOT NULL,
            scope_id    text,
            currency    text        NOT NULL,
            point       numeric     NOT NULL
        )
        """
    )
    # Dead letters are the record of themselves: no event on the main topics derives them,
    # so a rebuild keeps them as they are.
    op.execute(
        """
        CREATE TABLE dead_letters (
            event_id   uuid        PRIMARY KEY,
            type       text        NOT NULL,
            event_time timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX dead_letters_time ON dead_letters (event_time)")
    # Set over REST, not derived from events: a rebuild keeps them.
    op.execute(
        """
        CREATE TABLE quotas (
            period     text    NOT NULL,
            scope_kind text    NOT NULL,
            scope_id   text    NOT NULL DEFAULT '',
            amount     numeric NOT NULL CHECK (amount >= 0),
            currency   text    NOT NULL,
            PRIMARY KEY (period, scope_kind, scope_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE exchange_rates (
            currency   text        PRIMARY KEY,
            rate       numeric     NOT NULL CHECK (rate > 0),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    for table in (
        "exchange_rates",
        "quotas",
        "dead_letters",
        "forecasts",
        "rulesets",
        "lead_merges",
        "sla_breaches",
        "lead_assignments",
        "deal_stages",
        "activities",
        "deals",
        "leads",
        "accounts",
        "reps",
        "event_log",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute(
        """
        CREATE TABLE deal_outcomes (
            deal_id uuid PRIMARY KEY, outcome text NOT NULL, amount numeric, currency text,
            owner_id uuid, closed_at timestamptz, event_time timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE lead_assignments (
            lead_id uuid PRIMARY KEY, rep_id uuid, assigned_at timestamptz NOT NULL,
            event_time timestamptz NOT NULL, reached_rep boolean NOT NULL
        )
        """
    )
