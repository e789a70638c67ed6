"""The request id: a sane incoming `X-Request-ID` (a proxy's, up to 64 letters, digits, `-`, `_`, `.`) or a
new one, echoed in the response and on every log record emitted while the request is served (see
`exporter.log_format`), so one request's lines are found together and matched with the proxy's."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from exporter.log_format import REQUEST_ID

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(incoming: str | None) -> str:
    """`incoming` when it is sane, else a new random id (anything else could forge or break log lines)."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def install(app: Flask) -> None:
    """Register first, so that every other hook's log records carry the id."""

    @app.before_request
    def _start() -> None:
        g.request_id = request_id(request.headers.get(HEADER))
        REQUEST_ID.set(g.request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response

    @app.teardown_request
    def _end(_: BaseException | None) -> None:
        REQUEST_ID.set(None)  # the thread serves other requests next
