"""Outbox and inbox tables: every service's first migration calls these."""

from __future__ import annotations

from alembic import op

OUTBOX_CHANNEL = "salesops_outbox"


def create_messaging_tables() -> None:
    op.execute(
        """
        CREATE TABLE outbox (
            id          bigserial PRIMARY KEY,
            event_id    uuid        NOT NULL,
            topic       text        NOT NULL,
            key         bytea       NOT NULL,
            headers     bytea       NOT NULL,  -- JSON object of Kafka headers
            payload     bytea       NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            sent_at     timestamptz
        )
        """
    )
    # No unique (topic, event_id): callers stage an event once (inbox and delivery dedupe
    # upstream), a copy would only be a duplicate the consumers' inboxes absorb, and every
    # index here is paid twice per event (insert, then the relay's update).
    op.execute("CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL")
    # BRIN: rows arrive in time order, and a BRIN index costs next to nothing per insert.
    op.execute("CREATE INDEX outbox_created_at ON outbox USING brin (created_at)")
    # One notification per statement wakes the relay without a row-by-row cost.
    op.execute(
        f"""
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )
    op.execute(
        """
        CREATE TABLE inbox (
            consumer     text        NOT NULL,
            event_id     uuid        NOT NULL,
            event_type   text        NOT NULL,
            topic        text        NOT NULL,
            kafka_partition integer  NOT NULL,
            kafka_offset bigint      NOT NULL,
            status       text        NOT NULL,
            reason       text,
            applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (consumer, event_id)
        )
        """
    )
    op.execute("CREATE INDEX inbox_applied_at ON inbox (applied_at)")


def drop_messaging_tables() -> None:
    op.execute("DROP TABLE inbox")
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
    op.execute("DROP TABLE outbox")
