from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from salesops_common.settings import CommonSettings


class RoutingSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SALESOPS_", extra="ignore", populate_by_name=True)

    port: int = Field(8002, validation_alias="SALESOPS_ROUTING_PORT")
    database: str = Field("salesops_routing", validation_alias="SALESOPS_ROUTING_DATABASE")
    # How long routing's consumer lets the broker hold a fetch with nothing new. The dev
    # broker answers a waiting fetch only when it times out, so this bounds the wait of every
    # lead; an idle consumer costs ~6 % of a core at 10 ms, ~1.4 % at 50 ms (python -m
    # bench.fetch_wait).
    fetch_wait_ms: int = Field(10, ge=1, le=500, validation_alias="SALESOPS_ROUTING_FETCH_WAIT_MS")
    # How often due SLA timers and queued leads are looked at.
    sla_poll_seconds: float = Field(1.0, gt=0, validation_alias="SALESOPS_ROUTING_SLA_POLL_SECONDS")
    queue_poll_seconds: float = Field(
        30.0, gt=0, validation_alias="SALESOPS_ROUTING_QUEUE_POLL_SECONDS"
    )
    notify_poll_seconds: float = Field(
        1.0, gt=0, validation_alias="SALESOPS_ROUTING_NOTIFY_POLL_SECONDS"
    )
    notify_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias="SALESOPS_ROUTING_NOTIFY_TIMEOUT_SECONDS"
    )
    notify_max_attempts: int = Field(
        8, ge=1, validation_alias="SALESOPS_ROUTING_NOTIFY_MAX_ATTEMPTS"
    )
    # First retry delay of a failed notification; doubles per attempt (with jitter) up to
    # ten minutes. Tests shorten it.
    notify_backoff_seconds: float = Field(
        5.0, gt=0, validation_alias="SALESOPS_ROUTING_NOTIFY_BACKOFF_SECONDS"
    )
