"""A probe service's schema: the messaging tables plus an effects table with no unique key,
so that an event applied twice would show up as two rows.

Revision ID: 0001
"""

from alembic import op

from salesops_common.messaging_schema import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables()
    op.execute("CREATE TABLE effects (event_id uuid NOT NULL, subject text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE effects")
