"""One item of any of mailcow's ten log lists (mailcow-api.md §1) to one normalised `RawLine`. Pure.

Every service gets the same columns a log query needs: when (UTC), the service, one level vocabulary
(`LEVELS`), the program (syslog services only) and the text a person reads; the item itself is kept as
mailcow sent it. mailcow's lists differ in shape: the syslog-ng services (postfix, dovecot, sogo) send
`time` as a string of seconds with `priority`/`program`/`message`; netfilter an int `time` and its own
priorities (`warn`, `crit`); ratelimited, api and autodiscover int times and fields only, from which a
readable line is built; watchdog a health entry or a message entry; acme may base64-encode a message
(`base64,` prefix, which mailcow's UI decodes); rspamd-history rows carry `unix_time`.

An item that cannot be read (not an object, no valid time, a text field of the wrong type) yields None:
the caller counts it as unparsed. Nothing here raises on any JSON-like input.

Identity across overlapping fetches is `lines.number_window(service, items)` with the service's mailcow
name (the same key the postfix, netfilter and rspamd-history tables already use): `line_key` hashes the
whole item with its time compared as an integer, so every service de-duplicates the same way.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exporter.parsers import MAX_FIELD

LEVELS = ("debug", "info", "notice", "warning", "error", "critical")

# syslog level names (syslog-ng's $PRIORITY, netfilter's Logger, the cron log) to LEVELS.
_SYSLOG_LEVELS = {
    "emerg": "critical",
    "panic": "critical",
    "alert": "critical",
    "crit": "critical",
    "critical": "critical",
    "err": "error",
    "error": "error",
    "warning": "warning",
    "warn": "warning",
    "notice": "notice",
    "info": "info",
    "debug": "debug",
}
# rspamd actions by severity: rejecting spam is routine, so a reject is a warning, not an error.
_RSPAMD_LEVELS = {
    "no action": "info",
    "greylist": "notice",
    "add header": "notice",
    "rewrite subject": "notice",
    "soft reject": "notice",
    "reject": "warning",
}
# watchdog message entries (§3.5, after mailcow's `tr`): what each phrase says about the server.
_WATCHDOG_ERRORS = ("hit error limit", "is critical", "open relay", "not working properly", "did not complete")
_WATCHDOG_NOTICES = ("ratelimit was applied", "Banned ", "restart", "notification email")
_ACME_WARNINGS = ("error", "Cannot ", "No A or AAAA", "failed", "retrying")
_BASE64_PREFIX = "base64,"
_NUMBER = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?\Z")
# Times outside these bounds are no log line's (and would not fit a datetime): 1970..2999.
_MAX_EPOCH = 32_503_680_000


@dataclass(frozen=True, slots=True)
class RawLine:
    """One log line of one service; `item` is the item exactly as mailcow sent it."""

    service: str
    at: datetime
    level: str
    program: str | None
    message: str
    item: dict[str, Any]


def _epoch(value: Any) -> datetime | None:
    """An epoch in seconds (int, finite float or a numeric string) as a UTC datetime, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _NUMBER.match(value):
            return None
        value = float(value) if "." in value else int(value)
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if not 0 <= value < _MAX_EPOCH:
        return None
    return datetime.fromtimestamp(value, UTC)


def _text(value: Any) -> str:
    """A field as it reads in a built line, capped: `-` for null/absent, lists joined by `, `."""
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "-"
    return str(value)[:MAX_FIELD]


def _level(priority: Any) -> str:
    """A syslog priority name in LEVELS; anything unknown reads as info."""
    return _SYSLOG_LEVELS.get(priority.strip().lower(), "info") if isinstance(priority, str) else "info"


def _syslog(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """postfix, dovecot, sogo (syslog-ng) and netfilter (no program key): the message is the line."""
    message, program = item.get("message"), item.get("program")
    if not isinstance(message, str) or not isinstance(program, (str, type(None))):
        return None
    return _level(item.get("priority")), program[:MAX_FIELD] if program else None, message


def _ratelimited(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """A message a rate limit held back: who sent what to whom, and which limit."""
    message = (
        f"ratelimit {_text(item.get('rl_info'))} hit by user {_text(item.get('user'))} from {_text(item.get('ip'))}:"
        f" qid={_text(item.get('qid'))} from=<{_text(item.get('from'))}> rcpt=<{_text(item.get('rcpt'))}>"
        f" message-id=<{_text(item.get('message_id'))}> header_from={_text(item.get('header_from'))}"
        f' subject="{_text(item.get("header_subject"))}"'
    )
    return "warning", None, message


def _watchdog(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """A health entry (`service`, `lvl`, `hpnow`/`hptotal`, `hpdiff`) or a message entry."""
    message = item.get("message")
    if isinstance(message, str):
        if any(p in message for p in _WATCHDOG_ERRORS):
            return "error", None, message
        return ("notice" if any(p in message for p in _WATCHDOG_NOTICES) else "info"), None, message
    service = item.get("service")
    if not isinstance(service, str):
        return None
    hpnow, hptotal = _int(item.get("hpnow")), _int(item.get("hptotal"))
    level = "info"
    if hpnow is not None and hptotal is not None and hpnow < hptotal:
        level = "critical" if hpnow <= 0 else "warning"
    message = (
        f"{service[:MAX_FIELD]}: health {_text(item.get('hpnow'))}/{_text(item.get('hptotal'))}"
        f" ({_text(item.get('lvl'))}%), trend {_text(item.get('hpdiff'))}"
    )
    return level, None, message


def _int(value: Any) -> int | None:
    """watchdog's numbers arrive as strings: an int, or None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _acme(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """`<hostname> - <text>`; a `base64,` message is decoded as mailcow's UI does."""
    message = item.get("message")
    if not isinstance(message, str):
        return None
    if message.startswith(_BASE64_PREFIX):
        message = _decode_acme(message[len(_BASE64_PREFIX) :])
    return ("warning" if any(w in message for w in _ACME_WARNINGS) else "info"), None, message


def _decode_acme(payload: str) -> str:
    """`<hostname> - <base64>` (acme.sh: `log_f "${ACME_RESPONSE_B64}" redis_only b64` prefixes the
    hostname) or, from older acme containers, the whole payload base64; undecodable text stays as
    sent rather than losing the line. The response's trailing newline (`echo`) is dropped."""
    head, sep, tail = payload.partition(" - ")
    for prefix, encoded in ((head + sep, tail), ("", payload))[0 if sep else 1 :]:
        try:
            return prefix + base64.b64decode(encoded.strip(), validate=True).decode("utf-8", "replace").rstrip()
        except (binascii.Error, ValueError):
            continue
    return _BASE64_PREFIX + payload


def _api(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """A request to mailcow's API: method, path, client and the (password-masked) POST fields."""
    data = item.get("data")
    message = f"{_text(item.get('method'))} {_text(item.get('uri'))} from {_text(item.get('remote'))}"
    if data not in (None, ""):
        message += f" data: {_text(data)}"
    method = item.get("method")
    return ("notice" if isinstance(method, str) and method.upper() != "GET" else "info"), None, message


def _autodiscover(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """An autodiscover request: the type served (or mailcow's error), for whom, from where, by what."""
    service = _text(item.get("service"))
    level = "warning" if service.startswith("Error") else "info"
    message = (
        f"{service} for {_text(item.get('user'))} from {_text(item.get('ip'))} (user agent: {_text(item.get('ua'))})"
    )
    return level, None, message


def _rspamd(item: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """A scan result: action and score, envelope sender and recipients, client and subject."""
    action = item.get("action")
    if not isinstance(action, str):
        return None
    message = (
        f"{action[:MAX_FIELD]}: score {_text(item.get('score'))}/{_text(item.get('required_score'))}"
        f" from=<{_text(item.get('sender_smtp'))}> rcpt=<{_text(item.get('rcpt_smtp'))}>"
        f" ip={_text(item.get('ip'))} user={_text(item.get('user'))}"
        f' message-id=<{_text(item.get("message-id"))}> subject="{_text(item.get("subject"))}"'
    )
    return _RSPAMD_LEVELS.get(action, "info"), None, message


_Reader = Callable[[Mapping[str, Any]], tuple[str, str | None, str] | None]
# service (mailcow's list name) -> (time field, reader).
_SERVICES: dict[str, tuple[str, _Reader]] = {
    "postfix": ("time", _syslog),
    "dovecot": ("time", _syslog),
    "sogo": ("time", _syslog),
    "netfilter": ("time", _syslog),
    "ratelimited": ("time", _ratelimited),
    "rspamd-history": ("unix_time", _rspamd),
    "watchdog": ("time", _watchdog),
    "acme": ("time", _acme),
    "api": ("time", _api),
    "autodiscover": ("time", _autodiscover),
}
SERVICES = tuple(_SERVICES)


def parse(service: str, item: Any) -> RawLine | None:
    """The RawLine of one item of `service`'s list, or None when the item cannot be read."""
    spec = _SERVICES.get(service) if isinstance(service, str) else None
    if spec is None or not isinstance(item, dict):
        return None
    time_field, reader = spec
    at = _epoch(item.get(time_field))
    if at is None:
        return None
    try:
        read = reader(item)
    except (TypeError, ValueError, RecursionError):  # a field of a type no mailcow writes
        return None
    if read is None:
        return None
    level, program, message = read
    return RawLine(service, at, level, program, message, item)
