"""The two log formats every process the CLI starts writes: `plain` (one readable line) and `json` (one
JSON object per line, for log collectors), and the id of the HTTP request a log record was emitted for.

A record carries only its own fields (time, level, logger, message, exception, request id): never the
request's headers or the configuration, so no secret reaches the log by way of the formatter.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

FORMATS = ("plain", "json")
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# the id of the request being served on this thread; None outside a request (worker, start-up)
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One record as one line of JSON: time (UTC, ISO 8601), level, logger, message, and exception and
    request_id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        if request_id := REQUEST_ID.get():
            entry["request_id"] = request_id
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of `log_format` (one of FORMATS)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN)
