"""forecast: pipeline snapshot (deals, stages reached, reps), forecast runs and forecasts,
outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from salesops_common.messaging_schema import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create_pipeline_snapshot() -> None:
    # field_times: per field, the time of the event that set it (newer events win).
    op.execute(
        """
        CREATE TABLE deals (
            deal_id             uuid PRIMARY KEY,
            stage               text,
            amount              numeric,
            currency            text,
            owner_id            uuid,
            account_id          uuid,
            created_at          timestamptz,
            expected_close_date date,
            closed_at           timestamptz,
            outcome             text NOT NULL DEFAULT 'open'
                                CHECK (outcome IN ('open', 'won', 'lost')),
            deleted             boolean NOT NULL DEFAULT false,
            field_times         jsonb NOT NULL DEFAULT '{}',
            last_event_at       timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE deal_stages (
            deal_id       uuid NOT NULL,
            stage         text NOT NULL,
            first_seen_at timestamptz NOT NULL,
            PRIMARY KEY (deal_id, stage)
        )
        """
    )
    op.execute("CREATE INDEX deal_stages_stage ON deal_stages (stage)")
    op.execute(
        """
        CREATE TABLE reps (
            rep_id        uuid PRIMARY KEY,
            name          text,
            team          text,
            active        boolean,
            field_times   jsonb NOT NULL DEFAULT '{}',
            last_event_at timestamptz
        )
        """
    )


def _create_forecasts() -> None:
    op.execute(
        """
        CREATE TABLE forecast_runs (
            run_id                 uuid PRIMARY KEY,
            as_of                  timestamptz NOT NULL,
            currency               text NOT NULL,
            won_deals              integer NOT NULL,
            closed_deals           integer NOT NULL,
            stage_probabilities    jsonb NOT NULL,
            skipped_other_currency integer NOT NULL,
            created_at             timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE forecasts (
            seq                    bigserial UNIQUE,
            forecast_id            uuid PRIMARY KEY,
            run_id                 uuid NOT NULL REFERENCES forecast_runs (run_id),
            as_of                  timestamptz NOT NULL,
            currency               text NOT NULL,
            scope_kind             text NOT NULL,
            scope_id               text,
            period                 text NOT NULL,
            period_kind            text NOT NULL,
            starts_on              date NOT NULL,
            ends_on                date NOT NULL,
            point                  numeric NOT NULL,
            lo80                   numeric NOT NULL,
            hi80                   numeric NOT NULL,
            lo95                   numeric NOT NULL,
            hi95                   numeric NOT NULL,
            commit_amount          numeric NOT NULL,
            best_case_amount       numeric NOT NULL,
            pipeline_amount        numeric NOT NULL,
            deals                  integer NOT NULL,
            skipped_other_currency integer NOT NULL,
            methods                jsonb NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX forecasts_latest "
        "ON forecasts (scope_kind, scope_id, period, as_of DESC, seq DESC)"
    )
    op.execute("CREATE INDEX forecasts_run ON forecasts (run_id)")


def upgrade() -> None:
    create_messaging_tables()
    _create_pipeline_snapshot()
    _create_forecasts()


def downgrade() -> None:
    for table in ("forecasts", "forecast_runs", "reps", "deal_stages", "deals"):
        op.execute(f"DROP TABLE {table}")
    drop_messaging_tables()
