"""Dovecot log lines to the delivery rows `store.deliveries.load` stores (the lines that are no delivery
outcome are left out)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from exporter.parsers import dovecot


class Line(Protocol):
    """What a row needs of a Dovecot log line (parsers.raw_logs.RawLine has it): its UTC time and text."""

    at: datetime
    message: str


def rows(lines: Iterable[tuple[Line, bytes, int]]) -> list[tuple]:
    """(line, line_key, occurrence) oldest first -> rows for `store.deliveries.load`, in the same order.
    PostgreSQL text holds no NUL: one in a line becomes U+FFFD, as in the raw lines."""
    out = []
    for line, key, occurrence in lines:
        found = dovecot.parse(line.message.replace("\x00", "\ufffd"))
        if found is not None:
            out.append(
                (
                    line.at,
                    found.recipient,
                    found.session_id,
                    found.message_id,
                    found.outcome,
                    found.mailbox,
                    found.detail,
                    key,
                    occurrence,
                )
            )
    return out
