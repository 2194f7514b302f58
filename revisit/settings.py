"""Settings: the one place that reads the environment, and composes each library's config.

Every variable has the prefix `REVISIT_`. Libraries never read the environment (nor
import this module): each owns a small config model for what it needs, and the front
doors (the `revisit` CLI, the demo, the Dagster code location) build those models here
and hand them down:

- `Settings.dbt()` → `warehouse.config.DbtConfig`;
- `Settings.crm_api()` → `ingestion.crm.CrmApiConfig`;
- `Settings.receiver()` → `ingestion.messenger.receiver.ReceiverConfig`;
- `Settings.providers()` → `activation.config.ProvidersConfig` (its fields are
  settings too: `Settings` extends that model, so `REVISIT_WHATSAPP_BASE_URL` sets
  `whatsapp_base_url`, and so on; they are declared once, there).

Main variables:

- `REVISIT_DATA_DIR` — runtime data (warehouse, landing, exports, models, state,
  Dagster home); default `.data/` in the project root.
- `REVISIT_WAREHOUSE_DSN` — `chdb:///abs/dir` for the embedded engine (default
  `chdb:///<data dir>/warehouse`) or `http(s)://user:pass@host:8123/db` for a
  ClickHouse server.
- `REVISIT_STATE_DSN` — SQLAlchemy URL of the transactional store (outbox,
  cursors); default SQLite under the data directory.
- `REVISIT_CRM_API_URL` — the CRM REST API; unset: no API (file drops only).
- `REVISIT_CRM_FIELD_MAP` — field map of CRM exports without a per-business one.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activation.config import ProvidersConfig
from ingestion.config import CrmApiConfig, ReceiverConfig
from warehouse.config import PROJECT_ROOT, DbtConfig


class Settings(ProvidersConfig, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVISIT_", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / ".data")
    warehouse_dsn: str = ""
    state_dsn: str = ""
    dbt_target: Literal["embedded", "server"] | None = Field(
        default=None, description="dbt target; unset picks `embedded` or `server` from the DSN."
    )

    # Secrets of the messenger webhooks and the CRM API. The defaults only suit the
    # local demo and tests (stand-in servers on 127.0.0.1); set real ones in production.
    whatsapp_app_secret: SecretStr = SecretStr("dev-whatsapp-app-secret")
    whatsapp_verify_token: SecretStr = SecretStr("dev-whatsapp-verify-token")
    telegram_secret_token: SecretStr = SecretStr("dev-telegram-secret-token")
    sms_webhook_secret: SecretStr = SecretStr("dev-sms-webhook-secret")
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8780
    # Unset: no CRM API (businesses that only send files); the demo passes its stand-in's.
    crm_api_url: str | None = None
    crm_api_token: SecretStr = SecretStr("dev-crm-token")
    crm_field_map: Path | None = Field(
        default=None,
        description="Field map (YAML) for CRM exports of businesses without their own "
        "(`<data dir>/field_maps/<business_id>.yaml` or `field_map.yaml` in their folder).",
    )

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.warehouse_dsn:
            self.warehouse_dsn = f"chdb://{self.data_dir / 'warehouse'}"
        if not self.state_dsn:
            self.state_dsn = f"sqlite:///{self.data_dir / 'state' / 'revisit.db'}"
        return self

    # -- the libraries' configs ---------------------------------------------------------------
    def dbt(self) -> DbtConfig:
        return DbtConfig(
            warehouse_dsn=self.warehouse_dsn,
            target=self.dbt_target,
            artifacts_dir=self.data_dir / "dbt",
        )

    def crm_api(self, base_url: str | None = None) -> CrmApiConfig:
        return CrmApiConfig(
            base_url=base_url or self.crm_api_url or None,
            token=self.crm_api_token.get_secret_value(),
            cursor_store_dsn=self.state_dsn,
            url_setting="the asset's `api_url` config" if base_url else "REVISIT_CRM_API_URL",
        )

    def receiver(self, **overrides: Any) -> ReceiverConfig:
        values: dict[str, Any] = {
            "spool_root": self.spool_dir / "webhooks",
            "whatsapp_app_secret": self.whatsapp_app_secret.get_secret_value(),
            "whatsapp_verify_token": self.whatsapp_verify_token.get_secret_value(),
            "telegram_secret_token": self.telegram_secret_token.get_secret_value(),
            "sms_webhook_secret": self.sms_webhook_secret.get_secret_value(),
            "host": self.webhook_host,
            "port": self.webhook_port,
        }
        return ReceiverConfig(**{**values, **overrides})

    def providers(self, **overrides: Any) -> ProvidersConfig:
        fields = self.model_dump(include=set(ProvidersConfig.model_fields))
        return ProvidersConfig(**{**fields, **overrides})

    # -- where things live under the data directory ------------------------------------------
    @cached_property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    @cached_property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @cached_property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @cached_property
    def field_maps_dir(self) -> Path:
        """Per-business CRM field maps: `<business_id>.yaml`."""
        return self.data_dir / "field_maps"

    @cached_property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @cached_property
    def source_dir(self) -> Path:
        """Where source drops land (CRM exports, partner feeds, message exports)."""
        return self.landing_dir / "demo"

    @cached_property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def project_dir(self) -> Path:
        return PROJECT_ROOT


class SettingsError(ValueError):
    """A `REVISIT_*` variable holds a value the settings cannot take."""


def get_settings() -> Settings:
    """Settings as the environment says now (cheap; callers may keep the result).

    Raises SettingsError naming each offending variable, its value and what it accepts.
    """
    try:
        return Settings()
    except ValidationError as ex:
        problems = [
            f"REVISIT_{'_'.join(str(part) for part in error['loc']).upper()}="
            f"{error.get('input')!r}: {error['msg']}"
            for error in ex.errors()
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
