"""netfilter log entries (mailcow-api.md §1.4, §3.3) to typed events. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

_MATCHED = re.compile(r"^(?P<ip>[0-9A-Fa-f.:]+) matched rule id (?P<rule>\d+)(?: \((?P<line>.*)\))?$", re.S)
_ATTEMPTS = re.compile(
    r"^(?P<left>\d+) more attempts in the next (?P<window>\d+) seconds until (?P<net>[0-9A-Fa-f.:]+(?:/\d+)?) is banned"
)
_BAN = re.compile(r"^Banning (?P<net>[0-9A-Fa-f.:]+(?:/\d+)?)(?: for (?P<minutes>\d+) minutes)?")
_UNBAN = re.compile(r"^Unbanning (?P<net>[0-9A-Fa-f.:]+(?:/\d+)?)")
_DENY = re.compile(r"^(?P<what>Added|Removed) host/network (?P<net>\S+) (?:to|from) (?:denylist|blacklist)")
_SASL_USER = re.compile(r"sasl_username=([^,\s)]+)")
_SASL_METHOD = re.compile(r"SASL (\S+) authentication failed")
_DOVECOT_USER = re.compile(r"user=<([^>]*)>|\w+\(([^,()]+),[0-9a-fA-F.:]+,")
_SOGO_USER = re.compile(r"for user '([^']+)'")


@dataclass(frozen=True, slots=True)
class NetfilterEvent:
    """kind: warning | attempts | ban | unban | denylist_add | denylist_remove | info."""

    kind: str
    ip: str | None = None
    network: str | None = None
    rule_id: int | None = None
    attempts_left: int | None = None
    ban_minutes: int | None = None
    username: str | None = None
    auth_method: str | None = None


EVENT_FIELDS = tuple(f.name for f in fields(NetfilterEvent))


def _ip_of(network: str) -> str:
    return network.split("/", 1)[0]


def parse(message: str) -> NetfilterEvent:
    """Classify one netfilter message; anything unrecognised is kind 'info'."""
    match = _MATCHED.match(message)
    if match:
        line = match.group("line") or ""
        user = _SASL_USER.search(line) or _SOGO_USER.search(line)
        dovecot = _DOVECOT_USER.search(line) if not user else None
        method = _SASL_METHOD.search(line)
        username = user.group(1) if user else (dovecot.group(1) or dovecot.group(2)) if dovecot else None
        return NetfilterEvent(
            "warning",
            ip=match.group("ip"),
            rule_id=int(match.group("rule")),
            username=username or None,
            auth_method=f"SASL {method.group(1)}" if method else None,
        )
    match = _ATTEMPTS.match(message)
    if match:
        net = match.group("net")
        return NetfilterEvent("attempts", ip=_ip_of(net), network=net, attempts_left=int(match.group("left")))
    match = _BAN.match(message)
    if match:
        net = match.group("net")
        minutes = match.group("minutes")
        return NetfilterEvent("ban", ip=_ip_of(net), network=net, ban_minutes=int(minutes) if minutes else None)
    match = _UNBAN.match(message)
    if match:
        net = match.group("net")
        return NetfilterEvent("unban", ip=_ip_of(net), network=net)
    match = _DENY.match(message)
    if match:
        net = match.group("net")
        kind = "denylist_add" if match.group("what") == "Added" else "denylist_remove"
        return NetfilterEvent(kind, ip=_ip_of(net), network=net)
    return NetfilterEvent("info")
