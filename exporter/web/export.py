"""`/api/export/{postfix,rspamd,netfilter,messages}/csv`: streamed CSV, row limit CSV_EXPORT_LIMIT."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from flask import Blueprint, Response, stream_with_context

from exporter.http import params
from exporter.http.context import config, local_domains, pool
from exporter.readmodels import mail as readmodels
from exporter.store import logs as log_store
from exporter.store import messages as message_store
from exporter.store import reads

bp = Blueprint("export", __name__, url_prefix="/api/export")


def _csv(
    name: str,
    header: list[str],
    rows: reads.RowStream,
    to_row: Callable[[dict[str, Any]], list[Any]],
) -> Response:
    """Stream `rows` as CSV. The query runs and its first row is read before the response starts, so a
    failure (a timeout, the database gone) is still a JSON error with its status, not a cut-off file."""
    first = next(rows, None)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for count, row in enumerate(chain(() if first is None else (first,), rows), start=1):
            writer.writerow(to_row(row))
            if count % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    response = Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'},
    )
    response.call_on_close(rows.close)  # the cursor's connection goes back to the pool, whether read or not
    return response


@bp.get("/postfix/csv")
def postfix_csv() -> Response:
    args = params.parse(params.PostfixParams())
    rows = log_store.export_postfix(pool(), args, config().csv_export_limit)
    header = [
        "Time",
        "Program",
        "Priority",
        "Queue ID",
        "Message ID",
        "Sender",
        "Recipient",
        "Status",
        "Relay",
        "Delay",
        "DSN",
        "Message",
    ]

    def to_row(r: dict[str, Any]) -> list[Any]:
        line = readmodels.postfix_line(r)
        return [
            line["time"],
            line["program"],
            line["priority"],
            line["queue_id"],
            line["message_id"],
            line["sender"],
            line["recipient"],
            line["status"],
            line["relay"],
            line["delay"],
            line["dsn"],
            line["message"],
        ]

    return _csv("postfix", header, rows, to_row)


@bp.get("/rspamd/csv")
def rspamd_csv() -> Response:
    args = params.parse(params.RspamdParams())
    rows = log_store.export_rspamd(pool(), args, local_domains(), config().csv_export_limit)
    header = [
        "Time",
        "Message ID",
        "Subject",
        "Sender",
        "Recipients",
        "Score",
        "Required Score",
        "Action",
        "Direction",
        "Is Spam",
        "Has Auth",
        "User",
        "IP",
        "Size",
        "Top Symbols",
    ]

    def to_row(r: dict[str, Any]) -> list[Any]:
        top = sorted(r["symbols"].items(), key=lambda kv: -abs(float((kv[1] or {}).get("score") or 0)))[:5]
        return [
            readmodels.iso(r["logged_at"]),
            r["message_id"],
            r["subject"],
            r["sender_smtp"],
            ", ".join(r["rcpt_smtp"]),
            r["score"],
            r["required_score"],
            r["action"],
            r["direction"],
            r["is_spam"],
            r["user"] is not None,
            r["user"],
            r["ip"],
            r["size"],
            ", ".join(k for k, _ in top),
        ]

    return _csv("rspamd", header, rows, to_row)


@bp.get("/netfilter/csv")
def netfilter_csv() -> Response:
    args = params.parse(params.NetfilterParams())
    rows = log_store.export_netfilter(pool(), args, config().csv_export_limit)
    header = ["Time", "IP", "Username", "Auth Method", "Action", "Attempts Left", "Rule ID", "Priority", "Message"]

    def to_row(r: dict[str, Any]) -> list[Any]:
        n = readmodels.netfilter_row(r)
        return [
            n["time"],
            n["ip"],
            n["username"],
            n["auth_method"],
            n["action"],
            n["attempts_left"],
            n["rule_id"],
            n["priority"],
            n["message"],
        ]

    return _csv("netfilter", header, rows, to_row)


@bp.get("/messages/csv")
def messages_csv() -> Response:
    args = params.parse(params.MessageParams())
    rows = message_store.export_messages(pool(), args, config().csv_export_limit)
    header = [
        "Time",
        "Sender",
        "Recipient",
        "Subject",
        "Direction",
        "Status",
        "Queue ID",
        "Message ID",
        "Spam Score",
        "Is Spam",
        "User",
        "IP",
        "Is Complete",
    ]

    def to_row(r: dict[str, Any]) -> list[Any]:
        m = readmodels.message_summary(r)
        return [
            m["first_seen"],
            m["sender"],
            m["recipient"],
            m["subject"],
            m["direction"],
            m["final_status"],
            m["queue_id"],
            m["message_id"],
            m["spam_score"],
            m["is_spam"],
            m["user"],
            m["ip"],
            m["is_complete"],
        ]

    return _csv("messages", header, rows, to_row)
