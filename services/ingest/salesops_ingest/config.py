from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from salesops_common.settings import CommonSettings


class IngestSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SALESOPS_", extra="ignore", populate_by_name=True)

    port: int = Field(8001, validation_alias="SALESOPS_INGEST_PORT")
    database: str = Field("salesops_ingest", validation_alias="SALESOPS_INGEST_DATABASE")
    max_batch_events: int = 1000
    max_batch_bytes: int = 16 * 1024 * 1024
