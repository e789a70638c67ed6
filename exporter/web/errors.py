"""Every failure answers JSON `{"error", "detail", "code"}`, never an HTML page."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from exporter.mailcow_client import MailcowError, MailcowReadOnly, MailcowTimeout

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by handlers for a clear client-facing error."""

    def __init__(self, status: int, error: str, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.code = status, error, detail, code


def error_response(status: int, error: str, detail: str, code: str) -> Response:
    response = jsonify({"error": error, "detail": detail, "code": code})
    response.status_code = status
    return response


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").upper().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.detail, exc.code)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.name, exc.description or exc.name, _code_for(exc))
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(MailcowError)
    def _mailcow_error(exc: MailcowError) -> Response:
        if isinstance(exc, MailcowReadOnly):
            return error_response(403, "Read-only", str(exc), exc.code)
        status = 504 if isinstance(exc, MailcowTimeout) else 502
        return error_response(status, "mailcow API error", str(exc), exc.code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(
            500, "Internal Server Error", "an unexpected error occurred; see the service log", "INTERNAL_ERROR"
        )
