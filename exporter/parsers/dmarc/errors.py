"""The one error every report parser raises: a clear, user-facing reason."""

from __future__ import annotations

MAX_QUOTED = 40  # characters of a value an error message quotes
MAX_NAME = 253  # bytes of an indexed name (reporter, report id, domain): a DNS name's longest


class InvalidReport(ValueError):
    """The bytes are not a report we can read; the message says why (shown to the user)."""


def quoted(text: str) -> str:
    """A value as an error message quotes it, cut to MAX_QUOTED characters: a 309-digit number or
    a megabyte of text would drown the reason."""
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def indexed_name(text: str, what: str) -> str:
    """`text` when its UTF-8 fits MAX_NAME bytes: names the store indexes, three to a unique key, must fit
    a B-tree entry (2,704 bytes; a long random value was a 500), and no receiver sends longer ones."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME:
        raise InvalidReport(f"{what} has {size:,} bytes, over the {MAX_NAME} allowed: {quoted(repr(text))}")
    return text
