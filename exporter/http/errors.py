"""Every failure answers JSON `{"error", "detail", "code"}`, never an HTML page."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify
from psycopg.errors import QueryCanceled
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from exporter.mailcow.errors import MailcowError, MailcowReadOnly, MailcowTimeout
from exporter.store.database import Pool

log = logging.getLogger(__name__)
RETRY_AFTER = 10  # seconds a client should wait after a 503 for an overloaded database


class ApiError(Exception):
    """Raised by handlers for a clear client-facing error; `retry_after` (seconds) for a 503."""

    def __init__(self, status: int, error: str, detail: str, code: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.code = status, error, detail, code
        self.retry_after = retry_after


class InvalidParameter(ApiError):
    """A bad request parameter (query, path, form or JSON body, REST or Grafana alike): a 400 whose detail
    names it, with seed 004's code for a failed validation, so a client branches on one code for all."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, "Bad Request", detail, "VALIDATION_FAILED")


class QueryTimeout(ApiError):
    """A request's database work ran longer than QUERY_TIMEOUT (PostgreSQL's statement_timeout)."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "Service Unavailable",
            "the query took longer than QUERY_TIMEOUT allows; narrow the time range or filters, or retry later",
            "QUERY_TIMEOUT",
            RETRY_AFTER,
        )


def error_response(status: int, error: str, detail: str, code: str) -> Response:
    response = jsonify({"error": error, "detail": detail, "code": code})
    response.status_code = status
    return response


def code_for(name: str) -> str:
    """The envelope's code for an HTTP status name: "Request URI Too Large" is REQUEST_URI_TOO_LARGE."""
    return (name or "error").upper().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.error, exc.detail, exc.code)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(QueryCanceled)
    def _query_canceled(exc: QueryCanceled) -> Response:
        return _api_error(QueryTimeout())

    @app.errorhandler(PoolTimeout)
    def _pool_timeout(exc: PoolTimeout) -> Response:
        pool: Pool = current_app.config["MG_POOL"]
        if pool.database_answers():
            detail, code = "every database connection is busy; retry later", "DATABASE_BUSY"
        else:
            detail, code = "the database does not answer; retry later", "DATABASE_UNAVAILABLE"
        return _api_error(ApiError(503, "Service Unavailable", detail, code, RETRY_AFTER))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.name, exc.description or exc.name, code_for(exc.name))
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
