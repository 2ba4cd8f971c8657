"""Wake the delivery processor only for deliveries it has to process.

The trigger fired for every insert into ``deliveries``, also for the ones REST events, CSV
rows and API reads archive as already processed: each ``POST /v1/events`` transaction woke
the processor for an empty claim (a NOTIFY, then BEGIN, a locking SELECT and COMMIT on a
connection of its own). Now only a pending delivery (``processed_at`` NULL) notifies.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TRIGGER deliveries_notify ON deliveries")
    # Row-level: one delivery per webhook statement; notifications of one transaction on
    # one channel with one payload are delivered once.
    op.execute(
        "CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries "
        "FOR EACH ROW WHEN (NEW.processed_at IS NULL) EXECUTE FUNCTION deliveries_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER deliveries_notify ON deliveries")
    op.execute(
        "CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries "
        "FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify()"
    )
