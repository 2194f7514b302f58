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
  cursors); default SQLite under the data directory, or
  `postgresql+psycopg://user:pass@host:5432/db` (tested on PostgreSQL 15).
- `REVISIT_CRM_API_URL` — the CRM REST API; unset: no API (file drops only).
- `REVISIT_CRM_FIELD_MAP` — field map of CRM exports without a per-business one.

Secrets (webhook secrets, provider and CRM tokens, the customer-id key) have published
development defaults that only suit the demo and tests on 127.0.0.1. `revisit init` writes random
per-installation values to `<data dir>/secrets.env` (mode 0600); a secret is taken from
its `REVISIT_*` variable, else from that file, else the development default. Serving
webhooks on a non-loopback address, delivering to a provider that is not on loopback, or
syncing a CRM API that is not on loopback, is refused while a secret it uses is still a
development default (`refuse_dev_secrets`); each of these also refuses the development
customer-id key, since its ids would be reversible with the published key.

`customer_id_key` keys the pseudonymous `customer_id` (HMAC-SHA256 of the E.164 phone,
`ingestion.identity`). It is per installation, shared by every business (cross-business
marts join on it). Changing it (`revisit init --rotate`) changes every id: run
`revisit migrate customer-ids` afterwards.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activation.config import ProvidersConfig
from ingestion.config import CrmApiConfig, KafkaConfig, ReceiverConfig
from warehouse.config import PROJECT_ROOT, DbtConfig, redact_dsn

__all__ = ["PROJECT_ROOT", "Settings", "SettingsError", "get_settings", "redact_dsn"]

SECRETS_FILE = "secrets.env"
# Which secrets each front door relies on (field names of Settings).
WEBHOOK_SECRETS = (
    "whatsapp_app_secret", "whatsapp_verify_token", "telegram_secret_token", "sms_webhook_secret",
)  # fmt: skip
PROVIDER_SECRETS = {
    "whatsapp": ("whatsapp_base_url", "whatsapp_token"),
    "telegram": ("telegram_base_url", "telegram_bot_token"),
    "sms": ("sms_base_url", "sms_token"),
    "ledger": ("ledger_base_url", "ledger_token"),
}
ID_KEY_SECRET = "customer_id_key"


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
    # The key of the pseudonymous customer ids (HMAC of the E.164 phone).
    customer_id_key: SecretStr = SecretStr("dev-customer-id-key")
    crm_field_map: Path | None = Field(
        default=None,
        description="Field map (YAML) for CRM exports of businesses without their own "
        "(`<data dir>/field_maps/<business_id>.yaml` or `field_map.yaml` in their folder).",
    )

    # Webhooks through Kafka (ingestion.messenger.kafka): `kafka` sends what the receiver
    # accepts to REVISIT_KAFKA_TOPIC on REVISIT_KAFKA_BOOTSTRAP instead of the local spool,
    # and `revisit webhooks load` then also loads that topic.
    webhook_sink: Literal["spool", "kafka"] = "spool"
    kafka_bootstrap: str = ""
    kafka_topic: str = "revisit.messenger-webhooks"
    kafka_group: str = "revisit-messenger-loader"
    kafka_delivery_timeout_ms: int = 10_000
    kafka_options: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka settings (JSON), e.g. SASL/TLS."
    )

    def kafka(self) -> KafkaConfig | None:
        """The Kafka topic of the webhooks, or None when they go to the spool."""
        if self.webhook_sink != "kafka":
            return None
        if not self.kafka_bootstrap:
            raise SettingsError(
                "REVISIT_WEBHOOK_SINK=kafka needs REVISIT_KAFKA_BOOTSTRAP (host:port[,...])"
            )
        return KafkaConfig(
            bootstrap=self.kafka_bootstrap,
            topic=self.kafka_topic,
            group=self.kafka_group,
            delivery_timeout_ms=self.kafka_delivery_timeout_ms,
            options=self.kafka_options,
        )

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.warehouse_dsn:
            self.warehouse_dsn = f"chdb://{self.data_dir / 'warehouse'}"
        if not self.state_dsn:
            self.state_dsn = f"sqlite:///{self.data_dir / 'state' / 'revisit.db'}"
        # The secrets file fills in what the environment did not set: env > file > default.
        for name, value in read_secrets_file(self.secrets_path).items():
            if name in DEV_SECRETS and name not in self.model_fields_set:
                setattr(self, name, SecretStr(value))
                self.model_fields_set.add(name)
        return self

    # -- secrets -------------------------------------------------------------------------------
    @property
    def secrets_path(self) -> Path:
        return self.data_dir / SECRETS_FILE

    def dev_default_secrets(self, names: Iterable[str]) -> list[str]:
        """Of `names`, the secrets that still hold their published development default."""
        return [
            name for name in names if getattr(self, name).get_secret_value() == DEV_SECRETS[name]
        ]

    @property
    def id_key(self) -> bytes:
        """The customer-id key as the libraries take it (`ingestion.identity.customer_id`)."""
        return self.customer_id_key.get_secret_value().encode()

    def refuse_dev_secrets(
        self,
        *,
        webhook_host: str | None = None,
        providers: Iterable[str] = (),
        crm_api_url: str | None = None,
    ) -> None:
        """SettingsError if a secret used off loopback is still a development default.

        `webhook_host`: the receiver's bind address (non-loopback: every webhook secret
        counts); `providers`: those delivery will call (a provider whose base URL is not
        on loopback: its token counts); `crm_api_url`: the CRM API a sync will call (not
        on loopback: the CRM token counts). A remote provider or CRM also needs a
        per-installation customer-id key: ids go to the ledger, and real customers' ids
        under the published key are reversible. Loopback keeps the defaults: the demo and
        tests.
        """
        used: list[str] = []
        where: list[str] = []
        remote_data = False  # real customers' data flows: ids must be keyed per installation
        if webhook_host is not None and not is_loopback(webhook_host):
            used += WEBHOOK_SECRETS
            where.append(f"webhooks on {webhook_host}")
        for provider in providers:
            url_field, token_field = PROVIDER_SECRETS[provider]
            host = urlsplit(getattr(self, url_field)).hostname or ""
            if not is_loopback(host):
                used.append(token_field)
                where.append(f"{provider} at {host}")
                remote_data = True
        if crm_api_url:
            host = urlsplit(crm_api_url).hostname or ""
            if not is_loopback(host):
                used.append("crm_api_token")
                where.append(f"the CRM API at {host}")
                remote_data = True
        if remote_data:
            used.append(ID_KEY_SECRET)
        defaults = self.dev_default_secrets(used)
        if defaults:
            names = ", ".join(f"REVISIT_{name.upper()}" for name in defaults)
            raise SettingsError(
                f"refusing to start ({'; '.join(where)} is not loopback): {names} still "
                f"hold the published development defaults; run `revisit init` to write "
                f"per-installation secrets to {self.secrets_path}, or set them"
            )

    # -- the libraries' configs ---------------------------------------------------------------
    def dbt(self) -> DbtConfig:
        return DbtConfig(
            warehouse_dsn=self.warehouse_dsn,
            target=self.dbt_target,
            artifacts_dir=self.data_dir / "dbt",
        )

    def crm_api(self, base_url: str | None = None) -> CrmApiConfig:
        """The CRM sync's config; SettingsError (fail closed) when the API is not on
        loopback and the CRM token or the customer-id key is a development default."""
        url = base_url or self.crm_api_url or None
        if url:
            self.refuse_dev_secrets(crm_api_url=url)
        return CrmApiConfig(
            base_url=url,
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
            "kafka": self.kafka(),
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


# Every secret setting and its published development default (from the field defaults).
DEV_SECRETS: dict[str, str] = {
    name: field.default.get_secret_value()
    for name, field in Settings.model_fields.items()
    if isinstance(field.default, SecretStr)
}
# The development customer-id key: the ids of a data directory without `revisit init`
# (the demo, tests, benchmarks on a fresh directory).
DEV_ID_KEY = DEV_SECRETS[ID_KEY_SECRET].encode()


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; anything else (0.0.0.0, names) may be reachable."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secrets_file(path: Path) -> dict[str, str]:
    """`{field name: value}` from `REVISIT_NAME=value` lines (# comments, blanks skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("REVISIT_"):
            values[key.removeprefix("REVISIT_").lower()] = value.strip()
    return values


def write_secrets_file(path: Path, *, rotate: bool = False) -> tuple[list[str], list[str]]:
    """Give every secret with a development default a random per-installation value in
    `path` (mode 0600, replaced atomically). Values already in the file are kept unless
    `rotate`. Returns (written, kept) field names.
    """
    current = read_secrets_file(path)
    written: list[str] = []
    kept: list[str] = []
    values: dict[str, str] = {}
    for name in DEV_SECRETS:
        if name in current and not rotate:
            values[name] = current[name]
            kept.append(name)
        else:
            values[name] = secrets.token_urlsafe(32)
            written.append(name)
    lines = [
        "# Per-installation secrets of Revisit, written by `revisit init`. Keep this file",
        "# private (mode 0600). REVISIT_* environment variables override these values.",
        "# Provider and CRM tokens: replace them with the tokens the provider issued.",
        *(f"REVISIT_{name.upper()}={values[name]}" for name in DEV_SECRETS),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created 0600 (no window in which another user could read it), then moved in place.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written, kept


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
