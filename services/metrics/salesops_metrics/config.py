from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from salesops_common.settings import CommonSettings


class MetricsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SALESOPS_", extra="ignore", populate_by_name=True)

    port: int = Field(8003, validation_alias="SALESOPS_METRICS_PORT")
    database: str = Field("salesops_metrics", validation_alias="SALESOPS_METRICS_DATABASE")
