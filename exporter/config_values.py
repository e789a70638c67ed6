"""The value types of the settings (URLs, host and network lists, the raw log services) and their checks:
what `exporter.config` declares its settings with, and what the rest of the code asks of a host or URL."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from marshmallow import ValidationError, fields
from psycopg.conninfo import conninfo_to_dict

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_URL_UNSAFE_RE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, control characters, backslash
_AUTHORITY_RE = re.compile(r"[^/?#]*")  # what follows "scheme://" up to the path, query or fragment
_HOST_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
# Host names always served: a DNS-rebinding page cannot make a browser send them (it needs a name the
# attacker controls); pages on other local ports are told apart by their origin.
MASK = "********"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_http_url(value: str | None, credentials: bool = True) -> None:
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
    if not is_host(host_name(parts.hostname)):
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


def is_host(name: str) -> bool:
    """An IP address, or a host name whose last label is not all digits (1.2.3.999 is no address)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOST_NAME_RE.match(name)) and not name.rpartition(".")[2].isdigit()


# --- value types of the settings -------------------------------------------------------------------------


class Url(fields.String):
    """An http(s) base URL (`check_http_url`) without trailing slashes; masked whenever it is shown."""

    def __init__(self, *, credentials: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        url = super()._deserialize(value, attr, data, **kwargs)
        check_http_url(url, self.credentials)
        return url.rstrip("/")


class CommaList(fields.Field):
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


class ServiceList(CommaList):
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


class HostList(CommaList):
    """Host names or IP addresses (no scheme, port or path), as `host_name` compares them."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list:
        hosts = super()._deserialize(value, attr, data, **kwargs)
        bad = [h for h in hosts if not is_host(host_name(h))]
        if bad:
            raise ValidationError(f"not a host name or IP address (no scheme, port or path): {', '.join(bad)}")
        return [host_name(h) for h in hosts]


class NetworkList(CommaList):
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


def check_domains(value: list[str]) -> None:
    bad = [d for d in value if not _DOMAIN_RE.match(d)]
    if bad:
        raise ValidationError(f"not a domain name: {', '.join(bad)}")


def check_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {value!r}") from exc


def check_database_url(value: str) -> None:
    try:
        conninfo_to_dict(value)
    except psycopg.ProgrammingError:
        raise ValidationError("must be a postgresql:// URL or a libpq connection string") from None
