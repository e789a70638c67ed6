"""The one error every report parser raises: a clear, user-facing reason."""

from __future__ import annotations

MAX_QUOTED = 40  # characters of a value an error message quotes


class InvalidReport(ValueError):
    """The bytes are not a report we can read; the message says why (shown to the user)."""


def quoted(text: str) -> str:
    """A value as an error message quotes it, cut to MAX_QUOTED characters: a 309-digit number or
    a megabyte of text would drown the reason."""
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"
