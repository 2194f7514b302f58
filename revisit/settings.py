"""Settings: the one place that reads the environment.

Every variable has the prefix `REVISIT_`:

- `REVISIT_DATA_DIR` — runtime data (warehouse, landing, exports, models, state,
  Dagster home); default `.data/` in the project root.
- `REVISIT_WAREHOUSE_DSN` — `chdb:///abs/dir` for the embedded engine (default
  `chdb:///<data dir>/warehouse`) or `http(s)://user:pass@host:8123/db` for a
  ClickHouse server.
- `REVISIT_STATE_DSN` — SQLAlchemy URL of the transactional store (outbox,
  cursors); default SQLite under the data directory.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVISIT_", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / ".data")
    warehouse_dsn: str = ""
    state_dsn: str = ""
    dbt_target: str = Field(
        default="",
        description="dbt target; empty picks `embedded` or `server` from the warehouse DSN.",
    )

    # Secrets of the messenger webhooks and partner APIs. The defaults only suit the
    # local demo and tests (stand-in servers on 127.0.0.1); set real ones in production.
    whatsapp_app_secret: SecretStr = SecretStr("dev-whatsapp-app-secret")
    whatsapp_verify_token: SecretStr = SecretStr("dev-whatsapp-verify-token")
    telegram_secret_token: SecretStr = SecretStr("dev-telegram-secret-token")
    sms_webhook_secret: SecretStr = SecretStr("dev-sms-webhook-secret")
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8780
    crm_api_url: str = "http://127.0.0.1:8765"
    crm_api_token: SecretStr = SecretStr("dev-crm-token")

    # Providers of activation. The defaults are the local stand-ins (activation/standins),
    # never a real provider: production sets every URL and token.
    whatsapp_base_url: str = "http://127.0.0.1:8791"
    whatsapp_api_version: str = "v21.0"
    whatsapp_phone_number_id: str = "106540352242922"
    whatsapp_token: SecretStr = SecretStr("dev-whatsapp-token")
    whatsapp_rate_per_s: float | None = 80.0
    telegram_base_url: str = "http://127.0.0.1:8792"
    telegram_bot_token: SecretStr = SecretStr("123456:dev-telegram-bot-token")
    telegram_rate_per_s: float | None = 30.0
    sms_base_url: str = "http://127.0.0.1:8793"
    sms_token: SecretStr = SecretStr("dev-sms-token")
    sms_sender: str = "Revisit"
    sms_rate_per_s: float | None = 50.0
    ledger_base_url: str = "http://127.0.0.1:8794"
    ledger_token: SecretStr = SecretStr("dev-ledger-token")
    ledger_rate_per_s: float | None = 100.0

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.warehouse_dsn:
            self.warehouse_dsn = f"chdb://{self.data_dir / 'warehouse'}"
        if not self.state_dsn:
            self.state_dsn = f"sqlite:///{self.data_dir / 'state' / 'revisit.db'}"
        if not self.dbt_target:
            self.dbt_target = "embedded" if self.warehouse_dsn.startswith("chdb:") else "server"
        return self

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
    def dbt_project_dir(self) -> Path:
        return PROJECT_ROOT

    @property
    def dbt_profiles_dir(self) -> Path:
        return PROJECT_ROOT / "dbt_project"


def get_settings() -> Settings:
    """Settings as the environment says now (cheap; callers may keep the result)."""
    return Settings()
