"""The one error every report parser raises: a clear, user-facing reason."""

from __future__ import annotations


class InvalidReport(ValueError):
    """The bytes are not a report we can read; the message says why (shown to the user)."""
