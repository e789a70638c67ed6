"""What can go wrong talking to mailcow, one class per kind; `code` is the API error code it maps to.

Adapters catch these (a mailcow failure is a 502/504 with the JSON envelope), so they live apart from
the client: catching them needs no HTTP client.
"""

from __future__ import annotations


class MailcowError(Exception):
    """Base of every failure talking to mailcow; `status` is the HTTP status if any."""

    code = "MAILCOW_ERROR"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MailcowAuthError(MailcowError):
    """401: the API key is unknown/inactive, or the caller's IP is not allowed."""

    code = "MAILCOW_AUTH_FAILED"


class MailcowForbidden(MailcowError):
    """403: e.g. a read-only key used for a write call."""

    code = "MAILCOW_FORBIDDEN"


class MailcowNotFound(MailcowError):
    """404: route not found (mailcow answers the same for unknown log services)."""

    code = "MAILCOW_NOT_FOUND"


class MailcowServerError(MailcowError):
    """5xx: mailcow's database or dockerapi is down, or a proxy in front failed."""

    code = "MAILCOW_SERVER_ERROR"


class MailcowTimeout(MailcowError):
    code = "MAILCOW_TIMEOUT"


class MailcowUnreachable(MailcowError):
    code = "MAILCOW_UNREACHABLE"


class MailcowBadResponse(MailcowError):
    """A body that is not the JSON mailcow should send (empty body = no key was accepted)."""

    code = "MAILCOW_BAD_RESPONSE"


class MailcowReadOnly(MailcowError):
    """A write was asked for but no read-write key is configured."""

    code = "READ_ONLY"
