"""forecast: what the models learn from (accounts, leads, activity, territories, deals'
product, lead and stage entry, reps' e-mail and manager) and the scores they publish.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _extend_deals_and_reps() -> None:
    op.execute(
        "ALTER TABLE deals ADD COLUMN product text, ADD COLUMN lead_id uuid, "
        "ADD COLUMN stage_entered_at timestamptz"
    )
    # A deal entered its current stage when that stage was first seen (the consumer keeps
    # this from now on); the time is versioned like every field.
    op.execute(
        """
        UPDATE deals d SET stage_entered_at = s.first_seen_at,
            field_times = d.field_times
                || jsonb_build_object('stage_entered_at', to_jsonb(s.first_seen_at))
        FROM deal_stages s WHERE s.deal_id = d.deal_id AND s.stage = d.stage
        """
    )
    op.execute("CREATE INDEX deals_lead ON deals (lead_id) WHERE lead_id IS NOT NULL")
    op.execute("ALTER TABLE reps ADD COLUMN email text, ADD COLUMN manager_id uuid")


def _create_accounts_and_leads() -> None:
    op.execute(
        """
        CREATE TABLE accounts (
            account_id     uuid PRIMARY KEY,
            industry       text,
            employees      bigint,
            annual_revenue numeric,
            country        text,
            region         text,
            territory_id   text,
            deleted        boolean NOT NULL DEFAULT false,
            field_times    jsonb NOT NULL DEFAULT '{}',
            last_event_at  timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE leads (
            lead_id        uuid PRIMARY KEY,
            lead_source    text,
            industry       text,
            employees      bigint,
            annual_revenue numeric,
            country        text,
            region         text,
            account_id     uuid,
            created_at     timestamptz,
            lifecycle      text NOT NULL DEFAULT 'open'
                           CHECK (lifecycle IN ('open', 'converted', 'disqualified', 'deleted')),
            merged_into    uuid,
            duplicates     integer NOT NULL DEFAULT 0,
            field_times    jsonb NOT NULL DEFAULT '{}',
            last_event_at  timestamptz
        )
        """
    )
    # Per deal or lead: how many activities, the first and the last (events are applied
    # once each through the inbox, so counting is safe).
    op.execute(
        """
        CREATE TABLE activity_stats (
            subject_kind text NOT NULL CHECK (subject_kind IN ('deal', 'lead')),
            subject_id   uuid NOT NULL,
            activities   integer NOT NULL,
            first_at     timestamptz,
            last_at      timestamptz,
            PRIMARY KEY (subject_kind, subject_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE rulesets (
            version    integer PRIMARY KEY,
            ruleset    jsonb NOT NULL,
            event_time timestamptz NOT NULL
        )
        """
    )


def _create_scores() -> None:
    op.execute("ALTER TABLE forecast_runs ADD COLUMN deal_model jsonb, ADD COLUMN lead_model jsonb")
    # The newest score of each open deal and lead, and the one last published: a new score
    # is published only when it moved materially from that.
    op.execute(
        """
        CREATE TABLE deal_scores (
            deal_id            uuid PRIMARY KEY,
            run_id             uuid NOT NULL REFERENCES forecast_runs (run_id),
            scored_at          timestamptz NOT NULL,
            win_probability    double precision NOT NULL,
            close_in_month     double precision NOT NULL,
            close_in_quarter   double precision NOT NULL,
            model              text NOT NULL,
            model_version      text NOT NULL,
            reasons            jsonb NOT NULL,
            published_win      double precision,
            published_close    double precision,
            published_at       timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE lead_scores (
            lead_id               uuid PRIMARY KEY,
            run_id                uuid NOT NULL REFERENCES forecast_runs (run_id),
            scored_at             timestamptz NOT NULL,
            probability           double precision NOT NULL,
            model                 text NOT NULL,
            model_version         text NOT NULL,
            reasons               jsonb NOT NULL,
            published_probability double precision,
            published_at          timestamptz
        )
        """
    )


def upgrade() -> None:
    _extend_deals_and_reps()
    _create_accounts_and_leads()
    _create_scores()


def downgrade() -> None:
    for table in ("lead_scores", "deal_scores", "rulesets", "activity_stats", "leads", "accounts"):
        op.execute(f"DROP TABLE {table}")
    op.execute("ALTER TABLE forecast_runs DROP COLUMN deal_model, DROP COLUMN lead_model")
    op.execute("ALTER TABLE reps DROP COLUMN email, DROP COLUMN manager_id")
    op.execute("DROP INDEX deals_lead")
    op.execute(
        "ALTER TABLE deals DROP COLUMN product, DROP COLUMN lead_id, DROP COLUMN stage_entered_at"
    )
    op.execute(
        "UPDATE deals SET field_times = field_times - 'stage_entered_at' - 'product' - 'lead_id'"
    )
    op.execute("UPDATE reps SET field_times = field_times - 'email' - 'manager_id'")
