"""Settings fragments shared by every service; each service composes its own class."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"


class CommonSettings(BaseSettings):
    """The variables every service reads (names from the architecture's table)."""

    # Empty variables count as unset: compose passes optional ones as "".
    model_config = SettingsConfigDict(
        env_prefix="SALESOPS_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    api_token: SecretStr = Field(description="Bearer token for /v1 endpoints")
    database_url: str = DEFAULT_DATABASE_URL
    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    # Lets parallel test runs and several stacks share one broker without seeing each other.
    kafka_topic_prefix: str = ""
    kafka_partitions: int = 6
    kafka_enable_idempotence: bool = False
    http_host: str = "127.0.0.1"
    # Slow request bodies: after the grace, a body must keep this average rate (else 408).
    http_body_grace_seconds: float = Field(10.0, gt=0)
    http_body_min_rate: float = Field(1024.0, gt=0, description="bytes per second")
    log_level: str = "INFO"
    outbox_retention_hours: float = 24 * 7


def server_url(url: str) -> str:
    """Turn any PostgreSQL URL into a plain ``postgresql://`` server URL without a database."""
    parts = urlsplit(url)
    scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, "", parts.query, ""))


def database_dsn(url: str, database: str) -> str:
    """The asyncpg DSN of ``database`` on the server named by ``url``."""
    parts = urlsplit(server_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
