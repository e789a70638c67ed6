"""The one error every report parser raises: a clear, user-facing reason."""

from __future__ import annotations

MAX_QUOTED = 40  # characters of a value an error message quotes
MAX_NAME = 253  # characters of an indexed name (reporter, report id, domain): a DNS name's longest


class InvalidReport(ValueError):
    """The bytes are not a report we can read; the message says why (shown to the user)."""


def quoted(text: str) -> str:
    """A value as an error message quotes it, cut to MAX_QUOTED characters: a 309-digit number or
    a megabyte of text would drown the reason."""
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def indexed_name(text: str, what: str) -> str:
    """`text` when it fits MAX_NAME: names the store indexes must fit a B-tree entry (a long random
    value was a 500 from PostgreSQL's index row limit), and no receiver sends longer ones."""
    if len(text) > MAX_NAME:
        raise InvalidReport(f"{what} has {len(text):,} characters, over the {MAX_NAME} allowed: {quoted(repr(text))}")
    return text
