"""Configuration from environment variables, validated once at start-up.

Each setting is declared once, as a `Config` field made by `_setting`: its environment variable, marshmallow
field (type, validation), default and whether it is secret. The environment schema, secret masking and the
list of variables are all derived from those fields. A bad value must stop the service with one readable
line naming the variable, so errors are turned into `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, post_load, validate

from exporter import passwords
from exporter.config_values import (
    LOKI_TAIL_DEFAULT_NETWORKS,
    LOOPBACK_HOSTS,
    MASK,
    RAW_LOG_SERVICES,
    CommaList,
    HostList,
    NetworkList,
    ServiceList,
    Url,
    check_database_url,
    check_domains,
    check_timezone,
    host_name,
    mask_url,
)
from exporter.log_format import FORMATS as LOG_FORMATS

AUTH_OFF_WARNING = (
    "authentication is off (AUTH_ENABLED=false): anyone who can reach this service can read the mail logs "
    "and act on the queue and quarantine"
)


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


def _default_data_dir() -> str:
    return platformdirs.user_data_dir("mailcow-grafana", appauthor=False)


def _setting(
    variable: str,
    kind: Callable[..., fields.Field],
    default: Any = missing,
    *,
    secret: bool = False,
    **options: Any,
) -> Any:
    """The one declaration of a setting: a `Config` field read from the environment `variable` by a
    marshmallow field of `kind` (with its `options`: validation, `load_default` where unset loads other
    than `default`); no `default` = required. `secret` values are masked wherever they are shown."""
    required = default is missing
    options.setdefault("load_default", missing if required else default)
    loader = kind(data_key=variable, required=required, **options)
    metadata = {"loader": loader, "secret": secret}
    if required:  # a `Config` built in code (tests, benchmarks) may leave it empty
        return dataclasses.field(default="", metadata=metadata)
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _range(low: float, high: float | None = None) -> dict[str, Any]:
    return {"validate": validate.Range(min=low, max=high)}


@dataclass(frozen=True)
class Config:
    """The effective configuration of one process."""

    mailcow_url: str = _setting("MAILCOW_URL", Url)
    mailcow_api_key: str = _setting("MAILCOW_API_KEY", fields.String, secret=True, validate=validate.Length(min=1))
    mailcow_api_key_rw: str | None = _setting("MAILCOW_API_KEY_RW", fields.String, None, secret=True)
    mailcow_verify_tls: bool = _setting("MAILCOW_VERIFY_TLS", fields.Boolean, True)
    mailcow_timeout: float = _setting("MAILCOW_TIMEOUT", fields.Float, 10.0, **_range(0.5, 300))
    database_url: str | None = _setting("DATABASE_URL", fields.String, None, secret=True, validate=check_database_url)
    data_dir: str = _setting("DATA_DIR", fields.String, _default_data_dir)
    db_pool_size: int = _setting("DB_POOL_SIZE", fields.Integer, 5, **_range(1, 100))
    # seconds one SQL statement of a web request may run (not the worker's); below gunicorn's 60 s timeout
    query_timeout: float = _setting("QUERY_TIMEOUT", fields.Float, 20.0, **_range(1, 50))
    fetch_interval: int = _setting("FETCH_INTERVAL", fields.Integer, 15, **_range(5, 3600))
    fetch_count_postfix: int = _setting("FETCH_COUNT_POSTFIX", fields.Integer, 2000, **_range(1, 100000))
    fetch_count_rspamd: int = _setting("FETCH_COUNT_RSPAMD", fields.Integer, 500, **_range(1, 100000))
    fetch_count_netfilter: int = _setting("FETCH_COUNT_NETFILTER", fields.Integer, 500, **_range(1, 100000))
    retention_days: int = _setting("RETENTION_DAYS", fields.Integer, 7, **_range(1))
    raw_logs_enabled: bool = _setting("RAW_LOGS_ENABLED", fields.Boolean, True)
    raw_logs_services: list[str] = _setting("RAW_LOGS_SERVICES", ServiceList, lambda: list(RAW_LOG_SERVICES))
    raw_logs_fetch_interval: int = _setting("RAW_LOGS_FETCH_INTERVAL", fields.Integer, 20, **_range(2, 3600))
    raw_logs_fetch_count: int = _setting("RAW_LOGS_FETCH_COUNT", fields.Integer, 1000, **_range(1, 100000))
    raw_logs_retention_days: int = _setting("RAW_LOGS_RETENTION_DAYS", fields.Integer, 2, **_range(1, 365))
    loki_tail_allowed_networks: list[str] = _setting(
        "LOKI_TAIL_ALLOWED_NETWORKS", NetworkList, lambda: list(LOKI_TAIL_DEFAULT_NETWORKS)
    )
    local_domains: list[str] = _setting("LOCAL_DOMAINS", CommaList, list, validate=check_domains)
    timezone: str = _setting("TZ", fields.String, "UTC", validate=check_timezone)
    # unset loads as None: on when AUTH_PASSWORD is set (see _EnvSchema._build)
    auth_enabled: bool = _setting("AUTH_ENABLED", fields.Boolean, False, load_default=None)
    auth_opt_out: bool = False  # not a variable: AUTH_ENABLED=false set explicitly, running without auth on purpose
    auth_username: str = _setting("AUTH_USERNAME", fields.String, "admin", validate=validate.Length(min=1))
    auth_password: str | None = _setting("AUTH_PASSWORD", fields.String, None, secret=True, validate=passwords.check)
    auth_max_failures: int = _setting("AUTH_MAX_FAILURES", fields.Integer, 10, **_range(1, 10_000))  # README "Security"
    auth_lockout_seconds: int = _setting("AUTH_LOCKOUT_SECONDS", fields.Integer, 900, **_range(1, 86_400))
    rate_limit_per_minute: int = _setting("RATE_LIMIT_PER_MINUTE", fields.Integer, 600, **_range(0))  # 0 = off
    trusted_proxies: list[str] = _setting("TRUSTED_PROXIES", NetworkList, list)  # whose X-Forwarded-For counts
    log_level: str = _setting(
        "LOG_LEVEL", fields.String, "INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    )
    log_format: str = _setting("LOG_FORMAT", fields.String, "plain", validate=validate.OneOf(LOG_FORMATS))
    app_title: str = _setting("APP_TITLE", fields.String, "mailcow-grafana")
    expire_after_hours: int = _setting("EXPIRE_AFTER_HOURS", fields.Integer, 120, **_range(1, 24 * 60))
    csv_export_limit: int = _setting("CSV_EXPORT_LIMIT", fields.Integer, 100_000, **_range(1, 10_000_000))
    metrics_domain_labels: bool = _setting("METRICS_DOMAIN_LABELS", fields.Boolean, False)
    status_sync_interval: int = _setting("STATUS_SYNC_INTERVAL", fields.Integer, 30, **_range(5, 3600))
    live_cache_seconds: float = _setting("LIVE_CACHE_SECONDS", fields.Float, 5.0, **_range(0, 300))
    # Grafana's origin: CORS for panel actions, links back to dashboards
    grafana_url: str | None = _setting("GRAFANA_URL", Url, None, credentials=False)
    # this service as browsers reach it: the action links in dashboards
    public_url: str | None = _setting("PUBLIC_URL", Url, None, credentials=False)
    trusted_hosts: list[str] = _setting("TRUSTED_HOSTS", HostList, list)  # Host names answered besides loopback
    # signs confirmation-page tokens; generated and kept in PostgreSQL if unset
    secret_key: str | None = _setting("SECRET_KEY", fields.String, None, secret=True, validate=validate.Length(min=16))
    dns_resolvers: list[str] = _setting("DNS_RESOLVERS", CommaList, list)  # "ip" or "ip:port"; empty = the system's
    dns_check_interval_hours: int = _setting("DNS_CHECK_INTERVAL_HOURS", fields.Integer, 6, **_range(1, 168))
    mailcow_server_ips: list[str] = _setting("MAILCOW_SERVER_IPS", CommaList, list)  # empty = ask mailcow
    metrics_mailbox_quota: bool = _setting("METRICS_MAILBOX_QUOTA", fields.Boolean, False)
    geoip_city_db: str | None = _setting("GEOIP_CITY_DB", fields.String, None)
    geoip_asn_db: str | None = _setting("GEOIP_ASN_DB", fields.String, None)
    dmarc_reverse_dns: bool = _setting("DMARC_REVERSE_DNS", fields.Boolean, False)
    dmarc_manual_upload_enabled: bool = _setting("DMARC_MANUAL_UPLOAD_ENABLED", fields.Boolean, True)
    dmarc_upload_max_bytes: int = _setting("DMARC_UPLOAD_MAX_BYTES", fields.Integer, 10 * 1024 * 1024, **_range(1024))
    dmarc_imap_enabled: bool = _setting("DMARC_IMAP_ENABLED", fields.Boolean, False)
    dmarc_imap_host: str | None = _setting("DMARC_IMAP_HOST", fields.String, None)
    dmarc_imap_port: int = _setting("DMARC_IMAP_PORT", fields.Integer, 993, **_range(1, 65535))
    dmarc_imap_use_ssl: bool = _setting("DMARC_IMAP_USE_SSL", fields.Boolean, True)
    dmarc_imap_user: str | None = _setting("DMARC_IMAP_USER", fields.String, None)
    dmarc_imap_password: str | None = _setting("DMARC_IMAP_PASSWORD", fields.String, None, secret=True)
    dmarc_imap_folder: str = _setting("DMARC_IMAP_FOLDER", fields.String, "INBOX")
    dmarc_imap_archive_folder: str = _setting("DMARC_IMAP_ARCHIVE_FOLDER", fields.String, "Archive/DMARC")
    dmarc_imap_invalid_folder: str = _setting("DMARC_IMAP_INVALID_FOLDER", fields.String, "Archive/Invalid")
    dmarc_imap_interval: int = _setting("DMARC_IMAP_INTERVAL", fields.Integer, 3600, **_range(60))
    dmarc_imap_batch_size: int = _setting("DMARC_IMAP_BATCH_SIZE", fields.Integer, 20, **_range(1, 1000))
    dmarc_imap_delete_after: bool = _setting("DMARC_IMAP_DELETE_AFTER", fields.Boolean, False)

    @property
    def embedded_db_dir(self) -> Path:
        return Path(self.data_dir) / "pgdata"

    @property
    def read_write(self) -> bool:
        return bool(self.mailcow_api_key_rw)

    @property
    def served_hosts(self) -> frozenset[str]:
        """Host names requests may carry: loopback, PUBLIC_URL's host and TRUSTED_HOSTS (the CLI adds the bind
        address). Any other Host is refused: a DNS-rebinding page reaches us under its own name."""
        public = [host_name(urlsplit(self.public_url).hostname or "")] if self.public_url else []
        return LOOPBACK_HOSTS | {*self.trusted_hosts, *public}

    def masked(self) -> dict[str, Any]:
        """The configuration with secrets, and credentials in URLs, replaced: safe to print or return."""
        out = asdict(self)
        for item in dataclasses.fields(self):
            if not out[item.name]:
                continue
            if item.metadata.get("secret"):
                out[item.name] = MASK
            elif isinstance(item.metadata.get("loader"), Url):
                out[item.name] = mask_url(out[item.name])
        return out


class _EnvSchema(Schema):
    """Environment variables to `Config`; its fields are added from `Config`'s (see `_ENV`)."""

    class Meta:
        unknown = EXCLUDE

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Config:
        data["auth_opt_out"] = data["auth_enabled"] is False
        if data["auth_enabled"] is None:
            data["auth_enabled"] = bool(data["auth_password"])
        if data["auth_enabled"] and not data["auth_password"]:
            raise ValidationError("AUTH_ENABLED is true but AUTH_PASSWORD is empty", field_name="AUTH_PASSWORD")
        return Config(**data)


_ENV = _EnvSchema.from_dict(
    {item.name: item.metadata["loader"] for item in dataclasses.fields(Config) if "loader" in item.metadata},
    name="EnvSchema",
)
VARIABLES = frozenset(loader.data_key for loader in _ENV().fields.values())  # every environment variable read
_REQUIRED = tuple(name for name, loader in _ENV().fields.items() if loader.required)  # mailcow's URL and key


def load_config(environ: Mapping[str, str] | None = None, *, require_mailcow: bool = True) -> Config:
    """Validate the environment; raise ConfigError naming the first bad variable.

    `require_mailcow=False` is for commands that only touch the database (`migrate`).
    """
    env = os.environ if environ is None else environ
    relevant = {k: v for k, v in env.items() if k in VARIABLES and v != ""}
    try:
        return _ENV().load(relevant, partial=() if require_mailcow else _REQUIRED)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc.normalized_messages())) from None


def _first_error(messages: dict[str, Any]) -> str:
    name = sorted(messages)[0]
    detail = messages[name]
    while isinstance(detail, (list, dict)):
        detail = detail[0] if isinstance(detail, list) else next(iter(detail.values()))
    if name == "_schema":
        return str(detail)
    if detail == "Missing data for required field.":
        detail = "is required but not set"
    return f"{name}: {detail}"
