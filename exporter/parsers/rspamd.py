"""rspamd-history rows (mailcow-api.md §1.13) to typed records. Pure."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from exporter.parsers import MAX_FIELD
from exporter.parsers.words import words_literal

SPAM_ACTIONS = frozenset({"reject", "add header", "rewrite subject"})


class BadRow(ValueError):
    """A row without the fields every rspamd history row has."""


@dataclass(slots=True)  # not frozen: a frozen __init__ costs more than parsing a line
class RspamdRow:
    logged_at: datetime
    message_id: str | None
    subject: str | None
    sender_smtp: str | None
    sender_mime: str | None
    rcpt_smtp: list[str]
    rcpt_mime: list[str]
    ip: str | None
    user: str | None
    action: str
    score: float
    required_score: float | None
    is_skipped: bool
    size: int | None
    time_real: float | None
    symbols: dict[str, Any]
    is_spam: bool
    extra: dict[str, Any] | None  # fields this parser does not name, None when there are none
    search_words: str  # the words of subject, sender and Message-ID, as a tsvector literal (logs search)


ROW_FIELDS = tuple(f.name for f in fields(RspamdRow))

_KNOWN = {
    "unix_time",
    "message-id",
    "subject",
    "sender_smtp",
    "sender_mime",
    "rcpt_smtp",
    "rcpt_mime",
    "ip",
    "user",
    "action",
    "score",
    "required_score",
    "is_skipped",
    "size",
    "time_real",
    "symbols",
}


def _opt_str(value: Any, *nulls: str) -> str | None:
    """The text, cut to MAX_FIELD (the store indexes these); None for a placeholder or a non-string."""
    if value is None or not isinstance(value, str) or value in nulls:
        return None
    return value[:MAX_FIELD]


def _str_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if isinstance(value, str) and value:
        return [value]
    return []


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse(row: dict[str, Any]) -> RspamdRow:
    """Normalise one history row: 'undef'/'unknown' placeholders become None, symbols stay a dict."""
    try:
        logged_at = datetime.fromtimestamp(int(row["unix_time"]), tz=UTC)
        action = str(row["action"])
        score = float(row["score"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise BadRow(f"rspamd row lacks unix_time/action/score: {exc}") from exc
    symbols = row.get("symbols") if isinstance(row.get("symbols"), dict) else {}
    size = row.get("size")
    message_id = _opt_str(row.get("message-id"), "undef", "")
    subject = _opt_str(row.get("subject"), "unknown") if "subject" in row else None
    sender_smtp = _opt_str(row.get("sender_smtp"))
    return RspamdRow(
        logged_at=logged_at,
        message_id=message_id,
        subject=subject,
        sender_smtp=sender_smtp,
        sender_mime=_opt_str(row.get("sender_mime")),
        rcpt_smtp=_str_list(row.get("rcpt_smtp")),
        rcpt_mime=_str_list(row.get("rcpt_mime")),
        ip=_opt_str(row.get("ip"), "unknown", ""),
        user=_opt_str(row.get("user"), "unknown", ""),
        action=action,
        score=score,
        required_score=_float(row.get("required_score")),
        is_skipped=bool(row.get("is_skipped", False)),
        size=int(size) if isinstance(size, (int, float)) else None,
        time_real=_float(row.get("time_real")),
        symbols=symbols,
        is_spam=action in SPAM_ACTIONS,
        extra={k: v for k, v in row.items() if k not in _KNOWN} or None,
        search_words=words_literal((subject or "", sender_smtp or "", message_id or "")),
    )
