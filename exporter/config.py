"""Configuration from environment variables, validated once at start-up.

Each setting is declared once, as a `Config` field made by `_setting`: its environment variable, marshmallow
field (type, validation), default and whether it is secret. The environment schema, secret masking and the
list of variables are all derived from those fields. A bad value must stop the service with one readable
line naming the variable, so errors are turned into `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
import psycopg
from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, post_load, validate
from psycopg.conninfo import conninfo_to_dict

from exporter import passwords

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_URL_UNSAFE_RE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, control characters, backslash
_AUTHORITY_RE = re.compile(r"[^/?#]*")  # what follows "scheme://" up to the path, query or fragment
_HOST_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
# Host names always served: a DNS-rebinding page cannot make a browser send them (it needs a name the
# attacker controls); pages on other local ports are told apart by their origin.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
AUTH_OFF_WARNING = (
    "authentication is off (AUTH_ENABLED=false): anyone who can reach this service can read the mail logs "
    "and act on the queue and quarantine"
)
MASK = "********"


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


def _default_data_dir() -> str:
    return platformdirs.user_data_dir("mailcow-grafana", appauthor=False)


def _check_http_url(value: str | None, credentials: bool = True) -> None:
    """A base URL every client reads alike: http(s), a host name or IP literal, a port from 1 to 65535, no
    query or fragment; a user name and password only with `credentials` (URLs we send browsers to carry
    none: they would be shown in links). The messages never quote the value: it may hold a password."""
    if not value:
        return
    scheme, sep, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not sep:
        raise ValidationError("must be an http(s) URL such as https://mail.example.org")
    if _URL_UNSAFE_RE.search(value):
        raise ValidationError("contains a space, a control character or a backslash; percent-encode it")
    authority = _AUTHORITY_RE.match(rest).group()
    if authority.count("@") > 1 or "@" in rest[len(authority) :]:
        raise ValidationError(
            "has an '@' that does not end the user name and password: percent-encode '/', '?', '#' and '@' in "
            "them (%2F, %3F, %23, %40)"
        )
    if "?" in rest or "#" in rest:
        raise ValidationError("must not have a query or fragment ('?' or '#')")
    try:
        parts = urlsplit(value)
    except ValueError:  # an IPv6 literal without its closing bracket
        raise ValidationError("has an invalid IPv6 address, e.g. https://[2001:db8::1]") from None
    try:
        valid_port = parts.port != 0
    except ValueError:  # not a number, or above 65535
        valid_port = False
    if not valid_port:
        raise ValidationError("has an invalid port: use a number from 1 to 65535")
    if not parts.hostname:
        raise ValidationError("has no host name, e.g. https://mail.example.org")
    if "@" in authority and not credentials:
        raise ValidationError("must not hold a user name or password: browsers are sent to this URL")
    if not _is_host(host_name(parts.hostname)):
        raise ValidationError(f"has an invalid host {parts.hostname!r}: use a host name or IP address")


def host_name(value: str) -> str:
    """A host as Host headers and URLs carry it, compared without case, IPv6 brackets or a trailing dot."""
    return value.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host_name(host)
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost"


def mask_url(url: str) -> str:
    """The URL with everything between its scheme and its last '@' masked, safe to print, log or return
    however malformed: a password holding an unencoded '/', '?' or '#' (which end the authority early) or
    '@' is never shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at, host = rest.rpartition("@")[1:]
    return f"{scheme}{sep}{MASK}@{host}" if at else url


def _is_host(name: str) -> bool:
    """An IP address, or a host name whose last label is not all digits (1.2.3.999 is no address)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOST_NAME_RE.match(name)) and not name.rpartition(".")[2].isdigit()


# --- value types of the settings -------------------------------------------------------------------------


class _Url(fields.String):
    """An http(s) base URL (`_check_http_url`) without trailing slashes; masked whenever it is shown."""

    def __init__(self, *, credentials: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs)
        _check_http_url(url, self.credentials)
        return url.rstrip("/")


class _CommaList(fields.Field):
    """A comma-separated environment value as a list of lower-cased, non-empty items."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list:
        if not isinstance(value, str):
            raise ValidationError("must be a comma-separated string")
        return [item.strip().lower() for item in value.split(",") if item.strip()]


# The ten mailcow log lists kept as raw lines (issue 22; mailcow-api.md §1), by mailcow's list names.
RAW_LOG_SERVICES = (
    "postfix",
    "dovecot",
    "sogo",
    "netfilter",
    "ratelimited",
    "rspamd-history",
    "watchdog",
    "acme",
    "api",
    "autodiscover",
)
_SERVICE_ALIASES = {"rspamd": "rspamd-history"}  # seed 000 calls the list "Rspamd"


class _ServiceList(_CommaList):
    """`all`, or a comma-separated list of RAW_LOG_SERVICES (`rspamd` = `rspamd-history`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list:
        names = super()._deserialize(value, attr, data, **kwargs)
        if names == ["all"]:
            return list(RAW_LOG_SERVICES)
        names = [_SERVICE_ALIASES.get(n, n) for n in names]
        unknown = [n for n in names if n not in RAW_LOG_SERVICES]
        if unknown:
            raise ValidationError(f"unknown services {unknown}: use 'all' or some of {', '.join(RAW_LOG_SERVICES)}")
        return [s for s in RAW_LOG_SERVICES if s in names]


class _HostList(_CommaList):
    """Host names or IP addresses (no scheme, port or path), as `host_name` compares them."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list:
        hosts = super()._deserialize(value, attr, data, **kwargs)
        bad = [h for h in hosts if not _is_host(host_name(h))]
        if bad:
            raise ValidationError(f"not a host name or IP address (no scheme, port or path): {', '.join(bad)}")
        return [host_name(h) for h in hosts]


class _NetworkList(_CommaList):
    """IP networks in CIDR notation (a bare address is a network of one), normalised: `10.0.0.1/8` is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list:
        networks = []
        for item in super()._deserialize(value, attr, data, **kwargs):
            try:
                networks.append(str(ipaddress.ip_network(item)))
            except ValueError as exc:
                raise ValidationError(f"not an IP network in CIDR notation (e.g. 172.31.88.0/24): {exc}") from None
        return networks


# Who may open Loki's live tail without credentials (Grafana dials it without any): loopback by default;
# the compose file adds its pinned network (docker-compose.yml, networks.default).
LOKI_TAIL_DEFAULT_NETWORKS = ("127.0.0.0/8", "::1/128")


def _check_domains(value: list[str]) -> None:
    bad = [d for d in value if not _DOMAIN_RE.match(d)]
    if bad:
        raise ValidationError(f"not a domain name: {', '.join(bad)}")


def _check_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {value!r}") from exc


def _check_database_url(value: str) -> None:
    try:
        conninfo_to_dict(value)
    except psycopg.ProgrammingError:
        raise ValidationError("must be a postgresql:// URL or a libpq connection string") from None


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

    mailcow_url: str = _setting("MAILCOW_URL", _Url)
    mailcow_api_key: str = _setting("MAILCOW_API_KEY", fields.String, secret=True, validate=validate.Length(min=1))
    mailcow_api_key_rw: str | None = _setting("MAILCOW_API_KEY_RW", fields.String, None, secret=True)
    mailcow_verify_tls: bool = _setting("MAILCOW_VERIFY_TLS", fields.Boolean, True)
    mailcow_timeout: float = _setting("MAILCOW_TIMEOUT", fields.Float, 10.0, **_range(0.5, 300))
    database_url: str | None = _setting("DATABASE_URL", fields.String, None, secret=True, validate=_check_database_url)
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
    raw_logs_services: list[str] = _setting("RAW_LOGS_SERVICES", _ServiceList, lambda: list(RAW_LOG_SERVICES))
    raw_logs_fetch_interval: int = _setting("RAW_LOGS_FETCH_INTERVAL", fields.Integer, 20, **_range(2, 3600))
    raw_logs_fetch_count: int = _setting("RAW_LOGS_FETCH_COUNT", fields.Integer, 1000, **_range(1, 100000))
    raw_logs_retention_days: int = _setting("RAW_LOGS_RETENTION_DAYS", fields.Integer, 2, **_range(1, 365))
    loki_tail_allowed_networks: list[str] = _setting(
        "LOKI_TAIL_ALLOWED_NETWORKS", _NetworkList, lambda: list(LOKI_TAIL_DEFAULT_NETWORKS)
    )
    local_domains: list[str] = _setting("LOCAL_DOMAINS", _CommaList, list, validate=_check_domains)
    timezone: str = _setting("TZ", fields.String, "UTC", validate=_check_timezone)
    # unset loads as None: on when AUTH_PASSWORD is set (see _EnvSchema._build)
    auth_enabled: bool = _setting("AUTH_ENABLED", fields.Boolean, False, load_default=None)
    auth_opt_out: bool = False  # not a variable: AUTH_ENABLED=false set explicitly, running without auth on purpose
    auth_username: str = _setting("AUTH_USERNAME", fields.String, "admin", validate=validate.Length(min=1))
    auth_password: str | None = _setting("AUTH_PASSWORD", fields.String, None, secret=True, validate=passwords.check)
    log_level: str = _setting(
        "LOG_LEVEL", fields.String, "INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    )
    app_title: str = _setting("APP_TITLE", fields.String, "mailcow-grafana")
    expire_after_hours: int = _setting("EXPIRE_AFTER_HOURS", fields.Integer, 120, **_range(1, 24 * 60))
    csv_export_limit: int = _setting("CSV_EXPORT_LIMIT", fields.Integer, 100_000, **_range(1, 10_000_000))
    metrics_domain_labels: bool = _setting("METRICS_DOMAIN_LABELS", fields.Boolean, False)
    status_sync_interval: int = _setting("STATUS_SYNC_INTERVAL", fields.Integer, 30, **_range(5, 3600))
    live_cache_seconds: float = _setting("LIVE_CACHE_SECONDS", fields.Float, 5.0, **_range(0, 300))
    # Grafana's origin: CORS for panel actions, links back to dashboards
    grafana_url: str | None = _setting("GRAFANA_URL", _Url, None, credentials=False)
    # this service as browsers reach it: the action links in dashboards
    public_url: str | None = _setting("PUBLIC_URL", _Url, None, credentials=False)
    trusted_hosts: list[str] = _setting("TRUSTED_HOSTS", _HostList, list)  # Host names answered besides loopback
    # signs confirmation-page tokens; generated and kept in PostgreSQL if unset
    secret_key: str | None = _setting("SECRET_KEY", fields.String, None, secret=True, validate=validate.Length(min=16))
    dns_resolvers: list[str] = _setting("DNS_RESOLVERS", _CommaList, list)  # "ip" or "ip:port"; empty = the system's
    dns_check_interval_hours: int = _setting("DNS_CHECK_INTERVAL_HOURS", fields.Integer, 6, **_range(1, 168))
    mailcow_server_ips: list[str] = _setting("MAILCOW_SERVER_IPS", _CommaList, list)  # empty = ask mailcow
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
            elif isinstance(item.metadata.get("loader"), _Url):
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
