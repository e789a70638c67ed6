"""DNS check results and mailcow's account lists (domains, mailboxes, aliases) as last synced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from exporter.parsers.flags import is_set


def save_check(pool: ConnectionPool, result: dict[str, Any], full: bool) -> None:
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO domain_dns_checks (domain, spf, dkim, dmarc, checked_at, is_full_check)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (domain) DO UPDATE SET spf = EXCLUDED.spf, dkim = EXCLUDED.dkim, dmarc = EXCLUDED.dmarc,
                   checked_at = EXCLUDED.checked_at, is_full_check = EXCLUDED.is_full_check""",
            (
                result["domain"],
                Jsonb(result["spf"]),
                Jsonb(result["dkim"]),
                Jsonb(result["dmarc"]),
                datetime.fromisoformat(result["checked_at"].replace("Z", "+00:00")),
                full,
            ),
        )


def mark_full_check(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute(
            """INSERT INTO app_state (name, at) VALUES ('last_dns_check', now())
               ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at"""
        )


@dataclass(frozen=True)
class DnsCheck:
    """A domain's last SPF, DKIM and DMARC results (each a JSON object with a status) and when."""

    domain: str
    spf: dict[str, Any]
    dkim: dict[str, Any]
    dmarc: dict[str, Any]
    checked_at: datetime
    is_full_check: bool


def checks(pool: ConnectionPool) -> dict[str, DnsCheck]:
    """Every checked domain's last check, by domain."""
    with pool.connection() as conn, conn.cursor(row_factory=class_row(DnsCheck)) as cur:
        return {
            r.domain: r
            for r in cur.execute(
                "SELECT domain, spf, dkim, dmarc, checked_at, is_full_check FROM domain_dns_checks ORDER BY domain"
            )
        }


def last_full_check(pool: ConnectionPool) -> datetime | None:
    with pool.connection() as conn:
        row = conn.execute("SELECT at FROM app_state WHERE name = 'last_dns_check'").fetchone()
    return row[0] if row else None


def _epoch(value: Any) -> datetime | None:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _stamp(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None


def replace_accounts(pool: ConnectionPool, mailboxes: Iterable[dict], aliases: Iterable[dict]) -> tuple[int, int]:
    """Replace the synced mailbox and alias lists with mailcow's (one transaction)."""
    boxes = [
        (
            str(m.get("username", "")).lower(),
            str(m.get("domain", "")).lower(),
            m.get("name"),
            is_set(m.get("active", 1)),
            int(m.get("quota") or 0),
            int(m.get("quota_used") or 0),
            int(m.get("messages") or 0),
            _epoch(m.get("last_imap_login")),
            _epoch(m.get("last_pop3_login")),
            _epoch(m.get("last_smtp_login")),
            int(m["rl"]["value"]) if isinstance(m.get("rl"), dict) else None,
            m["rl"].get("frame") if isinstance(m.get("rl"), dict) else None,
            Jsonb(m.get("attributes") if isinstance(m.get("attributes"), dict) else {}),
            _stamp(m.get("created")),
            _stamp(m.get("modified")),
        )
        for m in mailboxes
        if m.get("username")
    ]
    links = [
        (
            str(a.get("address", "")).lower(),
            str(a.get("goto", "")).lower(),
            str(a.get("domain", "")).lower(),
            is_set(a.get("active", 1)),
            is_set(a.get("is_catch_all", 0)),
        )
        for a in aliases
        if a.get("address")
    ]
    with pool.connection() as conn, conn.transaction():
        conn.execute("DELETE FROM mailcow_mailboxes")
        conn.execute("DELETE FROM mailcow_aliases")
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO mailcow_mailboxes (username, domain, name, active, quota, quota_used, messages,
                       last_imap_login, last_pop3_login, last_smtp_login, rl_value, rl_frame, attributes, created,
                       modified) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                boxes,
            )
            cur.executemany(
                "INSERT INTO mailcow_aliases (address, goto, domain, active, is_catch_all) VALUES (%s, %s, %s, %s, %s)",
                links,
            )
    return len(boxes), len(links)
