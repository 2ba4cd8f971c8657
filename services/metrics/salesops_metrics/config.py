from __future__ import annotations

from pydantic import Field

from salesops_common.settings import CommonSettings


class MetricsSettings(CommonSettings):
    port: int = Field(8003, validation_alias="SALESOPS_METRICS_PORT")
    database: str = Field("salesops_metrics", validation_alias="SALESOPS_METRICS_DATABASE")
