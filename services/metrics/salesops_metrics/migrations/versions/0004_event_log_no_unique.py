"""metrics: the event log loses its unique index on ``event_id``.

Every event reaches the log through the consumer's batch, which claims the event's id in the
inbox (primary key ``(consumer, event_id)``, one consumer ``metrics.all``) in the same
transaction, and drops a second copy within a batch: the inbox already keeps an event from
being logged twice. The log's own unique index was a second b-tree over random UUIDs that
every batch wrote to (and its ``ON CONFLICT`` check), a share of the consumer's CPU and WAL
for nothing the reads use: the rebuild reads by ``seq``, the erasure by ``subject``. Without it
the batch writes the log with ``COPY``.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE event_log DROP CONSTRAINT event_log_event_id_key")


def downgrade() -> None:
    op.execute("ALTER TABLE event_log ADD CONSTRAINT event_log_event_id_key UNIQUE (event_id)")
