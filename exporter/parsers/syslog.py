"""Postfix syslog files (mailcow's postfix container output, `docker compose logs`) to log items.

Accepted line shapes, each optionally behind a `docker compose logs` prefix
(`postfix-mailcow-1  | `) and its `-t` timestamp:

    Nov 21 10:00:00 mail postfix/smtpd[123]: connect from ...        (RFC 3164, no year)
    2026-11-21T10:00:00.123456+01:00 mail postfix/smtpd[123]: ...    (ISO 8601 with offset)

Items come out in the API's shape (`time`, `program`, `priority`, `message`), so imported and
fetched lines share one parser and one identity.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

_COMPOSE_PREFIX = re.compile(r"^[\w.-]+\s+\|\s?")
_DOCKER_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\s+")
_RFC3164 = re.compile(r"^(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<hms>\d{2}:\d{2}:\d{2}) (?P<rest>.*)$")
_ISO = re.compile(r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) (?P<rest>.*)$")
_TAG = re.compile(r"^(?P<host>\S+) (?P<program>[\w./-]+)(?:\[\d+\])?: (?P<message>.*)$", re.S)
_MONTHS = {
    m: i
    for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)
}
_PRIORITY = (("warning:", "warning"), ("error:", "err"), ("fatal:", "crit"), ("panic:", "crit"))


def priority_of(message: str) -> str:
    """The syslog level Postfix uses for a message, from its prefix."""
    for prefix, level in _PRIORITY:
        if message.startswith(prefix):
            return level
    return "info"


def parse_line(line: str, tz: tzinfo, now: datetime) -> dict[str, str] | None:
    """One log item for a Postfix line, or None for anything else (other daemons, blank lines).

    RFC 3164 stamps carry no year: the year is the one that puts the line closest before `now`.
    """
    text = _DOCKER_TS.sub("", _COMPOSE_PREFIX.sub("", line.rstrip("\r\n"), count=1), count=1)
    match = _ISO.match(text)
    if match:
        try:
            stamp = datetime.fromisoformat(match.group("ts").replace("Z", "+00:00"))
        except ValueError:
            return None
        rest = match.group("rest")
    else:
        match = _RFC3164.match(text)
        if not match or match.group("mon") not in _MONTHS:
            return None
        try:
            hour, minute, second = (int(x) for x in match.group("hms").split(":"))
            stamp = datetime(
                now.year, _MONTHS[match.group("mon")], int(match.group("day")), hour, minute, second, tzinfo=tz
            )
        except ValueError:
            return None
        if stamp > now + timedelta(days=1):
            stamp = stamp.replace(year=now.year - 1)
        rest = match.group("rest")
    tag = _TAG.match(rest)
    if not tag or not tag.group("program").startswith(("postfix", "enforced-tls", "whitelist_forwardinghosts")):
        return None
    message = tag.group("message")
    return {
        "time": str(int(stamp.timestamp())),
        "program": tag.group("program"),
        "priority": priority_of(message),
        "message": message,
    }
