"""Smart filters of the raw log viewer (seed 000's one-click chips), declared once for every consumer.

A filter is a line regex and/or a set of levels on one service. The REST list applies it as
`?filter=<id>` (exporter/web/raw_logs.py), the live socket likewise, and Grafana gets the same
definition as LogQL (`logql`): `{service="postfix"} |= "NOQUEUE: reject:"`. Patterns are written in
the subset PostgreSQL's regexes and RE2 (Loki, Grafana) read alike, and hold no comma, backslash or
quote and start and end with no space, so they also survive a Grafana custom variable (which trims
values) and a double-quoted LogQL string unchanged.
Most are plain texts or plain texts joined by `|`: the gram index then finds their lines
(raw_search.gram_query) instead of a scan of every line of the service.
Every pattern is checked against mailcow's real line formats (mailcow-api.md §3) in
tests/test_smart_filters.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from exporter.store.raw_search import LabelMatch, TextMatch

PROBLEM_LEVELS = ("warning", "error", "critical")
_REGEX = re.compile(r"[.^$*+?()\[\]{}|\\]")  # a pattern without these is plain text


@dataclass(frozen=True)
class SmartFilter:
    """One named filter of one service's lines."""

    id: str
    label: str
    description: str
    pattern: str | None = None  # line regex (|~; plain text is |=), case-sensitive unless it starts with (?i)
    levels: tuple[str, ...] = ()  # any of these levels (exporter.parsers.raw_logs.LEVELS)

    def labels(self) -> tuple[LabelMatch, ...]:
        return (LabelMatch("level", "=~", "|".join(self.levels)),) if self.levels else ()

    def operator(self) -> str:
        """`|=` for a plain text (the gram index finds its lines), `|~` for a regex."""
        return "|~" if _REGEX.search(self.pattern or "") else "|="

    def text(self) -> tuple[TextMatch, ...]:
        return (TextMatch(self.operator(), self.pattern),) if self.pattern else ()

    def logql(self, service: str) -> str:
        """The filter as a LogQL log query over `service`'s stream."""
        selector = f'service="{service}"' + (f', level=~"{"|".join(self.levels)}"' if self.levels else "")
        return f"{{{selector}}}" + (f' {self.operator()} "{self.pattern}"' if self.pattern else "")


_F = SmartFilter
FILTERS: dict[str, tuple[SmartFilter, ...]] = {
    "postfix": (
        _F(
            "postscreen",
            "Postscreen",
            "postscreen's verdicts on connecting clients: connects, passes, DNSBL ranks, pregreets, hangups",
            "CONNECT from|PASS NEW|PASS OLD|DNSBL rank|PREGREET|HANGUP after|COMMAND PIPELINING|WHITELISTED|DISCONNECT",
        ),
        _F("noqueue_reject", "NOQUEUE Reject", "Mail refused before it was queued", "NOQUEUE: reject:"),
        _F(
            "dnsbl_block",
            "DNSBL Block",
            "Clients listed by a DNS blocklist: dnsblog hits, postscreen ranks and blocks",
            "blocked using |DNSBL rank |listed by domain",
        ),
        _F("pregreet", "Pregreet", "Clients that talked before the greeting (bots)", "PREGREET"),
        _F(
            "sender_recipient_restrictions",
            "Sender/Recipient Restrictions",
            "Sender or recipient address rejected by smtpd's restrictions (unknown user, not owned by user)",
            "Sender address rejected|Recipient address rejected",
        ),
        _F("relay_denied", "Relay Denied", "Attempts to relay through this server", "Relay access denied"),
        _F(
            "connections",
            "Connections",
            "SMTP connects, disconnects and lost connections",
            "^connect from |^disconnect from |^lost connection after |^CONNECT from",
        ),
    ),
    "dovecot": (
        _F(
            "auth_failures",
            "Auth failures",
            "Failed logins: wrong passwords, unknown users, failed authentication",
            "auth failed|Password mismatch|authentication failed|unknown user|HTTP request failed with 401",
        ),
        _F("logins", "Logins", "Successful IMAP, POP3 and ManageSieve logins", "-login: Login:"),
        _F(
            "lmtp_deliveries",
            "LMTP deliveries",
            "What LMTP and Sieve did with each delivered message (stored, discarded, redirected, rejected, failed)",
            "^lmtp[(].+msgid=",
        ),
        _F("quota", "Quota", "Quota exceeded and quota warnings", "(?i)quota"),
    ),
    "sogo": (
        _F(
            "logins",
            "Logins",
            "SOGo web logins, successful and failed",
            "SOGoRootPage successful login|SOGoRootPage Login from",
        ),
        _F(
            "failed_logins",
            "Failed logins",
            "SOGo logins that did not work (netfilter rule 8) and failed IMAP logins",
            "might not have worked|IMAP4 login failed",
        ),
    ),
    "netfilter": (
        _F("bans", "Bans", "Addresses banned", "^Banning"),
        _F("unbans", "Unbans", "Addresses unbanned", "^Unbanning"),
        _F(
            "attempts",
            "Attempts",
            "Failed attempts counted towards a ban",
            "matched rule id |more attempts in the next",
        ),
    ),
    "rspamd-history": (
        _F("rejects", "Rejects", "Messages rspamd rejected or soft-rejected", "^reject:|^soft reject:"),
        _F(
            "spam",
            "Spam",
            "Messages rspamd judged spam: rejected, subject rewritten or spam header added",
            "^reject:|^rewrite subject:|^add header:",
        ),
    ),
    "watchdog": (
        _F(
            "unhealthy",
            "Unhealthy",
            "Health checks below their threshold and watchdog alerts (error limits, open relay, certificates)",
            levels=PROBLEM_LEVELS,
        ),
    ),
    "acme": (_F("errors", "Errors", "Certificate requests that failed or were retried", levels=PROBLEM_LEVELS),),
    "api": (
        _F(
            "write_requests",
            "Write requests",
            "Requests that change mailcow (not GET)",
            "^POST |^PUT |^DELETE |^PATCH",
        ),
    ),
    "autodiscover": (_F("errors", "Errors", "Autodiscover requests mailcow could not answer", "^Error:"),),
}


def of(service: str) -> tuple[SmartFilter, ...]:
    """The service's smart filters (none for a service without any)."""
    return FILTERS.get(service, ())


def find(service: str, filter_id: str) -> SmartFilter | None:
    return next((f for f in of(service) if f.id == filter_id), None)


def describe(service: str, smart: SmartFilter) -> dict[str, Any]:
    """A filter as `/api/raw-logs/<service>/smart-filters` lists it."""
    return {
        "id": smart.id,
        "label": smart.label,
        "description": smart.description,
        "pattern": smart.pattern,
        "operator": smart.operator() if smart.pattern else None,
        "levels": list(smart.levels),
        "logql": smart.logql(service),
        "rest": f"/api/raw-logs/{service}?filter={smart.id}",
    }
