from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from salesops_common.settings import CommonSettings


class IngestSettings(CommonSettings):
    """Ingest's settings; names follow docs/architecture (``SALESOPS_...``)."""

    model_config = SettingsConfigDict(env_prefix="SALESOPS_", extra="ignore", populate_by_name=True)

    port: int = Field(8001, validation_alias="SALESOPS_INGEST_PORT")
    database: str = Field("salesops_ingest", validation_alias="SALESOPS_INGEST_DATABASE")
    max_batch_events: int = 1000
    max_batch_bytes: int = 16 * 1024 * 1024
    webhook_max_bytes: int = Field(
        1024 * 1024, validation_alias="SALESOPS_INGEST_WEBHOOK_MAX_BYTES"
    )
    # Requests per second per source, after authentication ("hubspot:2000,pipedrive:200";
    # one number applies to every source; 0 turns the limit off).
    rate_limit: str = Field("2000", validation_alias="SALESOPS_INGEST_RATE_LIMIT")
    dedupe_window_hours: int = Field(96, validation_alias="SALESOPS_INGEST_DEDUPE_WINDOW_HOURS")
    # The raw delivery archive keeps processed deliveries this long (0: for ever); replays reach
    # back no further. Unprocessed ones are never pruned.
    archive_retention_days: float = Field(
        30.0, ge=0, validation_alias="SALESOPS_INGEST_ARCHIVE_RETENTION_DAYS"
    )
    # How often housekeeping prunes delivery identities and the raw archive.
    housekeeping_seconds: float = Field(
        300.0, gt=0, validation_alias="SALESOPS_INGEST_HOUSEKEEPING_SECONDS"
    )
    mappings_dir: str | None = Field(None, validation_alias="SALESOPS_INGEST_MAPPINGS_DIR")
    # Reconciliation pull from each configured CRM API, in minutes (0: only on demand).
    sync_interval_minutes: float = Field(
        15.0, validation_alias="SALESOPS_INGEST_SYNC_INTERVAL_MINUTES"
    )
    crm_retry_base_seconds: float = Field(
        0.5, validation_alias="SALESOPS_INGEST_CRM_RETRY_BASE_SECONDS"
    )

    public_base_url: str | None = Field(None, validation_alias="SALESOPS_PUBLIC_BASE_URL")
    hubspot_client_secret: SecretStr | None = Field(
        None, validation_alias="SALESOPS_HUBSPOT_CLIENT_SECRET"
    )
    hubspot_api_base: str = Field(
        "https://api.hubapi.com", validation_alias="SALESOPS_HUBSPOT_API_BASE"
    )
    hubspot_access_token: SecretStr | None = Field(
        None, validation_alias="SALESOPS_HUBSPOT_ACCESS_TOKEN"
    )
    hubspot_portal_ids: str = Field("", validation_alias="SALESOPS_HUBSPOT_PORTAL_IDS")
    salesforce_org_ids: str = Field("", validation_alias="SALESOPS_SALESFORCE_ORG_IDS")
    salesforce_api_base: str | None = Field(None, validation_alias="SALESOPS_SALESFORCE_API_BASE")
    salesforce_access_token: SecretStr | None = Field(
        None, validation_alias="SALESOPS_SALESFORCE_ACCESS_TOKEN"
    )
    pipedrive_user: str | None = Field(None, validation_alias="SALESOPS_PIPEDRIVE_USER")
    pipedrive_password: SecretStr | None = Field(
        None, validation_alias="SALESOPS_PIPEDRIVE_PASSWORD"
    )
    pipedrive_api_base: str = Field(
        "https://api.pipedrive.com", validation_alias="SALESOPS_PIPEDRIVE_API_BASE"
    )
    pipedrive_api_token: SecretStr | None = Field(
        None, validation_alias="SALESOPS_PIPEDRIVE_API_TOKEN"
    )
    pipedrive_company_ids: str = Field("", validation_alias="SALESOPS_PIPEDRIVE_COMPANY_IDS")

    def rate_limits(self) -> dict[str, float]:
        """Requests per second by source; key "*" for every source not named."""
        limits: dict[str, float] = {}
        for part in self.rate_limit.split(","):
            part = part.strip()
            if not part:
                continue
            source, _, value = part.rpartition(":")
            limits[source or "*"] = float(value)
        return limits
