"""routing: each rep's lead counts kept as leads are assigned, moved and closed.

``GET /v1/reps`` counted every assignment ever made on each call (a scan of the whole
history: 54 ms at 150,000 leads, and 5 calls a second in the soak); the least-loaded
strategy counted every open lead of its members on each decision. Both now read one row
per rep, maintained in the statements that change assignments (exact: a test compares them
with a recount).

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # assigned_leads: leads whose current assignment is the rep's; open_leads: of those, the
    # ones still open. A rep without a row has none of either.
    op.execute(
        """
        CREATE TABLE rep_lead_counts (
            rep_id         uuid PRIMARY KEY,
            assigned_leads bigint NOT NULL DEFAULT 0,
            open_leads     bigint NOT NULL DEFAULT 0
        )
        """
    )
    op.execute(
        """
        INSERT INTO rep_lead_counts (rep_id, assigned_leads, open_leads)
        SELECT rep_id, count(*), count(*) FILTER (WHERE status = 'open')
        FROM assignments WHERE rep_id IS NOT NULL GROUP BY rep_id
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rep_lead_counts")
