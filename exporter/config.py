"""Configuration from environment variables, validated once at start-up.

A bad value must stop the service with one readable line naming the variable, so every
field is validated by a marshmallow schema and errors are turned into `ConfigError`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
import psycopg
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates
from psycopg.conninfo import conninfo_to_dict

SECRET_KEYS = frozenset(
    {"mailcow_api_key", "mailcow_api_key_rw", "auth_password", "database_url", "secret_key", "dmarc_imap_password"}
)
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
    return f"{scheme}{sep}********@{host}" if at else url


class _CommaList(fields.Field):
    """A comma-separated environment value as a list of lower-cased, non-empty items."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list:
        if not isinstance(value, str):
            raise ValidationError("must be a comma-separated string")
        return [item.strip().lower() for item in value.split(",") if item.strip()]


class _EnvSchema(Schema):
    """Environment variables (upper-case keys) to `Config` fields."""

    class Meta:
        unknown = EXCLUDE

    MAILCOW_URL = fields.String(required=True, attribute="mailcow_url")
    MAILCOW_API_KEY = fields.String(required=True, attribute="mailcow_api_key", validate=validate.Length(min=1))
    MAILCOW_API_KEY_RW = fields.String(load_default=None, attribute="mailcow_api_key_rw")
    MAILCOW_VERIFY_TLS = fields.Boolean(load_default=True, attribute="mailcow_verify_tls")
    MAILCOW_TIMEOUT = fields.Float(
        load_default=10.0, attribute="mailcow_timeout", validate=validate.Range(min=0.5, max=300)
    )
    DATABASE_URL = fields.String(load_default=None, attribute="database_url")
    DATA_DIR = fields.String(load_default=_default_data_dir, attribute="data_dir")
    DB_POOL_SIZE = fields.Integer(load_default=5, attribute="db_pool_size", validate=validate.Range(min=1, max=100))
    QUERY_TIMEOUT = fields.Float(  # below the web server's 60 s worker timeout
        load_default=20.0, attribute="query_timeout", validate=validate.Range(min=1, max=50)
    )
    FETCH_INTERVAL = fields.Integer(
        load_default=15, attribute="fetch_interval", validate=validate.Range(min=5, max=3600)
    )
    FETCH_COUNT_POSTFIX = fields.Integer(
        load_default=2000, attribute="fetch_count_postfix", validate=validate.Range(min=1, max=100000)
    )
    FETCH_COUNT_RSPAMD = fields.Integer(
        load_default=500, attribute="fetch_count_rspamd", validate=validate.Range(min=1, max=100000)
    )
    FETCH_COUNT_NETFILTER = fields.Integer(
        load_default=500, attribute="fetch_count_netfilter", validate=validate.Range(min=1, max=100000)
    )
    RETENTION_DAYS = fields.Integer(load_default=7, attribute="retention_days", validate=validate.Range(min=1))
    LOCAL_DOMAINS = _CommaList(load_default=list, attribute="local_domains")
    TZ = fields.String(load_default="UTC", attribute="timezone")
    AUTH_ENABLED = fields.Boolean(load_default=None, attribute="auth_enabled")
    AUTH_USERNAME = fields.String(load_default="admin", attribute="auth_username", validate=validate.Length(min=1))
    AUTH_PASSWORD = fields.String(load_default=None, attribute="auth_password")
    LOG_LEVEL = fields.String(
        load_default="INFO",
        attribute="log_level",
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    )
    APP_TITLE = fields.String(load_default="mailcow-grafana", attribute="app_title")
    EXPIRE_AFTER_HOURS = fields.Integer(
        load_default=120, attribute="expire_after_hours", validate=validate.Range(min=1, max=24 * 60)
    )
    CSV_EXPORT_LIMIT = fields.Integer(
        load_default=100_000, attribute="csv_export_limit", validate=validate.Range(min=1, max=10_000_000)
    )
    METRICS_DOMAIN_LABELS = fields.Boolean(load_default=False, attribute="metrics_domain_labels")
    STATUS_SYNC_INTERVAL = fields.Integer(
        load_default=30, attribute="status_sync_interval", validate=validate.Range(min=5, max=3600)
    )
    LIVE_CACHE_SECONDS = fields.Float(
        load_default=5.0, attribute="live_cache_seconds", validate=validate.Range(min=0, max=300)
    )
    GRAFANA_URL = fields.String(load_default=None, attribute="grafana_url")
    PUBLIC_URL = fields.String(load_default=None, attribute="public_url")
    TRUSTED_HOSTS = _CommaList(load_default=list, attribute="trusted_hosts")
    SECRET_KEY = fields.String(load_default=None, attribute="secret_key", validate=validate.Length(min=16))
    DNS_RESOLVERS = _CommaList(load_default=list, attribute="dns_resolvers")
    DNS_CHECK_INTERVAL_HOURS = fields.Integer(
        load_default=6, attribute="dns_check_interval_hours", validate=validate.Range(min=1, max=168)
    )
    MAILCOW_SERVER_IPS = _CommaList(load_default=list, attribute="mailcow_server_ips")
    METRICS_MAILBOX_QUOTA = fields.Boolean(load_default=False, attribute="metrics_mailbox_quota")
    GEOIP_CITY_DB = fields.String(load_default=None, attribute="geoip_city_db")
    GEOIP_ASN_DB = fields.String(load_default=None, attribute="geoip_asn_db")
    DMARC_REVERSE_DNS = fields.Boolean(load_default=False, attribute="dmarc_reverse_dns")
    DMARC_MANUAL_UPLOAD_ENABLED = fields.Boolean(load_default=True, attribute="dmarc_manual_upload_enabled")
    DMARC_UPLOAD_MAX_BYTES = fields.Integer(
        load_default=10 * 1024 * 1024, attribute="dmarc_upload_max_bytes", validate=validate.Range(min=1024)
    )
    DMARC_IMAP_ENABLED = fields.Boolean(load_default=False, attribute="dmarc_imap_enabled")
    DMARC_IMAP_HOST = fields.String(load_default=None, attribute="dmarc_imap_host")
    DMARC_IMAP_PORT = fields.Integer(load_default=993, attribute="dmarc_imap_port", validate=validate.Range(1, 65535))
    DMARC_IMAP_USE_SSL = fields.Boolean(load_default=True, attribute="dmarc_imap_use_ssl")
    DMARC_IMAP_USER = fields.String(load_default=None, attribute="dmarc_imap_user")
    DMARC_IMAP_PASSWORD = fields.String(load_default=None, attribute="dmarc_imap_password")
    DMARC_IMAP_FOLDER = fields.String(load_default="INBOX", attribute="dmarc_imap_folder")
    DMARC_IMAP_ARCHIVE_FOLDER = fields.String(load_default="Archive/DMARC", attribute="dmarc_imap_archive_folder")
    DMARC_IMAP_INVALID_FOLDER = fields.String(load_default="Archive/Invalid", attribute="dmarc_imap_invalid_folder")
    DMARC_IMAP_INTERVAL = fields.Integer(
        load_default=3600, attribute="dmarc_imap_interval", validate=validate.Range(min=60)
    )
    DMARC_IMAP_BATCH_SIZE = fields.Integer(
        load_default=20, attribute="dmarc_imap_batch_size", validate=validate.Range(min=1, max=1000)
    )
    DMARC_IMAP_DELETE_AFTER = fields.Boolean(load_default=False, attribute="dmarc_imap_delete_after")

    @validates("GRAFANA_URL")
    def _check_grafana_url(self, value: str | None, **_: Any) -> None:
        _check_http_url(value, credentials=False)

    @validates("PUBLIC_URL")
    def _check_public_url(self, value: str | None, **_: Any) -> None:
        _check_http_url(value, credentials=False)

    @validates("MAILCOW_URL")
    def _check_url(self, value: str, **_: Any) -> None:
        _check_http_url(value)

    @validates("TRUSTED_HOSTS")
    def _check_hosts(self, value: list[str], **_: Any) -> None:
        bad = [h for h in value if not _is_host(host_name(h))]
        if bad:
            raise ValidationError(f"not a host name or IP address (no scheme, port or path): {', '.join(bad)}")

    @validates("DATABASE_URL")
    def _check_db(self, value: str | None, **_: Any) -> None:
        if not value:
            return
        try:
            conninfo_to_dict(value)
        except psycopg.ProgrammingError:
            raise ValidationError("must be a postgresql:// URL or a libpq connection string") from None

    @validates("TZ")
    def _check_tz(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"unknown time zone {value!r}") from exc

    @validates("LOCAL_DOMAINS")
    def _check_domains(self, value: list[str], **_: Any) -> None:
        bad = [d for d in value if not _DOMAIN_RE.match(d)]
        if bad:
            raise ValidationError(f"not a domain name: {', '.join(bad)}")

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> Config:
        data["auth_opt_out"] = data["auth_enabled"] is False
        if data["auth_enabled"] is None:
            data["auth_enabled"] = bool(data["auth_password"])
        if data["auth_enabled"] and not data["auth_password"]:
            raise ValidationError("AUTH_ENABLED is true but AUTH_PASSWORD is empty", field_name="AUTH_PASSWORD")
        for key in ("mailcow_url", "grafana_url", "public_url"):
            if data.get(key):
                data[key] = data[key].rstrip("/")
        data["trusted_hosts"] = [host_name(h) for h in data["trusted_hosts"]]
        return Config(**data)


def _is_host(name: str) -> bool:
    """An IP address, or a host name whose last label is not all digits (1.2.3.999 is no address)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOST_NAME_RE.match(name)) and not name.rpartition(".")[2].isdigit()


@dataclass(frozen=True)
class Config:
    """The effective configuration of one process."""

    mailcow_url: str = ""
    mailcow_api_key: str = ""
    mailcow_api_key_rw: str | None = None
    mailcow_verify_tls: bool = True
    mailcow_timeout: float = 10.0
    database_url: str | None = None
    data_dir: str = field(default_factory=_default_data_dir)
    db_pool_size: int = 5
    query_timeout: float = 20.0  # seconds one SQL statement of a web request may run (not the worker's)
    fetch_interval: int = 15
    fetch_count_postfix: int = 2000
    fetch_count_rspamd: int = 500
    fetch_count_netfilter: int = 500
    retention_days: int = 7
    local_domains: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    auth_enabled: bool = False
    auth_opt_out: bool = False  # AUTH_ENABLED=false set explicitly: running without auth on purpose
    auth_username: str = "admin"
    auth_password: str | None = None
    log_level: str = "INFO"
    app_title: str = "mailcow-grafana"
    expire_after_hours: int = 120
    csv_export_limit: int = 100_000
    metrics_domain_labels: bool = False
    status_sync_interval: int = 30
    live_cache_seconds: float = 5.0
    grafana_url: str | None = None  # Grafana's origin: CORS for panel actions, links back to dashboards
    public_url: str | None = None  # this service as browsers reach it: the action links in dashboards
    trusted_hosts: list[str] = field(default_factory=list)  # Host names we answer to, besides the loopback ones
    secret_key: str | None = None  # signs confirmation-page tokens; generated and kept in PostgreSQL if unset
    dns_resolvers: list[str] = field(default_factory=list)  # "ip" or "ip:port"; empty = the system's
    dns_check_interval_hours: int = 6
    mailcow_server_ips: list[str] = field(default_factory=list)  # empty = ask mailcow (status/host/ip)
    metrics_mailbox_quota: bool = False
    geoip_city_db: str | None = None
    geoip_asn_db: str | None = None
    dmarc_reverse_dns: bool = False
    dmarc_manual_upload_enabled: bool = True
    dmarc_upload_max_bytes: int = 10 * 1024 * 1024
    dmarc_imap_enabled: bool = False
    dmarc_imap_host: str | None = None
    dmarc_imap_port: int = 993
    dmarc_imap_use_ssl: bool = True
    dmarc_imap_user: str | None = None
    dmarc_imap_password: str | None = None
    dmarc_imap_folder: str = "INBOX"
    dmarc_imap_archive_folder: str = "Archive/DMARC"
    dmarc_imap_invalid_folder: str = "Archive/Invalid"
    dmarc_imap_interval: int = 3600
    dmarc_imap_batch_size: int = 20
    dmarc_imap_delete_after: bool = False

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
        """The configuration with secrets replaced, safe to print or return."""
        out = asdict(self)
        for key in SECRET_KEYS:
            if out.get(key):
                out[key] = "********"
        for key in ("mailcow_url", "grafana_url", "public_url"):
            if out.get(key):
                out[key] = mask_url(out[key])
        return out


def load_config(environ: Mapping[str, str] | None = None, *, require_mailcow: bool = True) -> Config:
    """Validate the environment; raise ConfigError naming the first bad variable.

    `require_mailcow=False` is for commands that only touch the database (`migrate`).
    """
    env = os.environ if environ is None else environ
    relevant = {k: v for k, v in env.items() if k in _EnvSchema().fields and v != ""}
    partial = () if require_mailcow else ("MAILCOW_URL", "MAILCOW_API_KEY")
    try:
        return _EnvSchema().load(relevant, partial=partial)
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
