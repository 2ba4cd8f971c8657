from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from salesops_common.settings import CommonSettings
from salesops_metrics.domain.periods import WINDOWS


class MetricsSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="SALESOPS_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    port: int = Field(8003, validation_alias="SALESOPS_METRICS_PORT")
    database: str = Field("salesops_metrics", validation_alias="SALESOPS_METRICS_DATABASE")
    # Writes of quotas and exchange rates, and rebuilds; the API token when unset.
    admin_token: SecretStr | None = Field(None, validation_alias="SALESOPS_METRICS_ADMIN_TOKEN")
    currency: str = Field(
        "USD", min_length=3, max_length=3, validation_alias="SALESOPS_METRICS_CURRENCY"
    )
    # Keep equal to SALESOPS_FORECAST_FISCAL_YEAR_START_MONTH: quarters are named by it.
    fiscal_year_start_month: int = Field(
        1, ge=1, le=12, validation_alias="SALESOPS_METRICS_FISCAL_YEAR_START_MONTH"
    )
    response_sla_minutes: float = Field(
        60.0, gt=0, validation_alias="SALESOPS_METRICS_RESPONSE_SLA_MINUTES"
    )
    # The window of the gauges on /metrics (rest answers take any window).
    exposition_window: str = Field("30d", validation_alias="SALESOPS_METRICS_EXPOSITION_WINDOW")
    # Rep-level series on /metrics: for teams small enough (one series per rep and KPI).
    rep_labels: bool = Field(False, validation_alias="SALESOPS_METRICS_REP_LABELS")
    # How often the /metrics snapshot is taken again when anything it depends on changed.
    refresh_interval_ms: int = Field(
        250, ge=10, validation_alias="SALESOPS_METRICS_REFRESH_INTERVAL_MS"
    )
    # How old a snapshot a scrape may show (0: always everything committed before the scrape).
    scrape_staleness_ms: int = Field(
        10_000, ge=0, validation_alias="SALESOPS_METRICS_SCRAPE_STALENESS_MS"
    )

    # KPI reads for requests running at once (identical requests share one: a request is
    # answered by a read started after it arrived); a listing's takes 3 connections.
    kpi_reads: int = Field(2, ge=1, validation_alias="SALESOPS_METRICS_KPI_READS")

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("exposition_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value not in WINDOWS:
            raise ValueError(f"one of {', '.join(WINDOWS)}")
        return value
