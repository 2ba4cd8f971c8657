from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from salesops_common.settings import CommonSettings


class ForecastSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SALESOPS_", extra="ignore", populate_by_name=True)

    port: int = Field(8004, validation_alias="SALESOPS_FORECAST_PORT")
    database: str = Field("salesops_forecast", validation_alias="SALESOPS_FORECAST_DATABASE")
    fiscal_year_start_month: int = Field(
        1, ge=1, le=12, validation_alias="SALESOPS_FORECAST_FISCAL_YEAR_START_MONTH"
    )
    # The reporting currency: until exchange rates exist, amounts in others are skipped.
    currency: str = Field(
        "USD", min_length=3, max_length=3, validation_alias="SALESOPS_FORECAST_CURRENCY"
    )
    # Scheduled forecast runs (scoring included), on wall-clock multiples of the interval;
    # 0 turns them off. Several processes share each tick: one runs it.
    run_interval_seconds: float = Field(
        3600, ge=0, validation_alias="SALESOPS_FORECAST_RUN_INTERVAL_SECONDS"
    )
    # A new deal or lead score is published when it moved at least this much (absolute)
    # from the one last published.
    score_change_threshold: float = Field(
        0.02, gt=0, le=1, validation_alias="SALESOPS_FORECAST_SCORE_CHANGE_THRESHOLD"
    )
