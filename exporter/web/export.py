"""`/api/export/{postfix,rspamd,netfilter,messages}/csv`: streamed CSV, row limit CSV_EXPORT_LIMIT."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from flask import Blueprint, Response, stream_with_context

from exporter.http import params
from exporter.http.context import config, local_domains, pool
from exporter.readmodels import logs, messages
from exporter.readmodels.logs import Columns
from exporter.store import logs as log_store
from exporter.store import messages as message_store
from exporter.store import reads

bp = Blueprint("export", __name__, url_prefix="/api/export")


def _csv(
    name: str,
    columns: Columns,
    rows: reads.RowStream,
    shape: Callable[[dict[str, Any]], Mapping[str, Any]],
) -> Response:
    """Stream `rows` as CSV: each row shaped by `shape`, then its `columns`. The query runs and its first
    row is read before the response starts, so a failure (a timeout, the database gone) is still a JSON
    error with its status, not a cut-off file."""
    first = next(rows, None)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([header for header, _ in columns])
        for count, row in enumerate(chain(() if first is None else (first,), rows), start=1):
            shaped = shape(row)
            writer.writerow([shaped[key] for _, key in columns])
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
    return _csv("postfix", logs.POSTFIX_CSV, rows, logs.postfix_line)


@bp.get("/rspamd/csv")
def rspamd_csv() -> Response:
    args = params.parse(params.RspamdParams())
    rows = log_store.export_rspamd(pool(), args, local_domains(), config().csv_export_limit)
    return _csv("rspamd", logs.RSPAMD_CSV, rows, logs.rspamd_export)


@bp.get("/netfilter/csv")
def netfilter_csv() -> Response:
    args = params.parse(params.NetfilterParams())
    rows = log_store.export_netfilter(pool(), args, config().csv_export_limit)
    return _csv("netfilter", logs.NETFILTER_CSV, rows, logs.netfilter_row)


@bp.get("/messages/csv")
def messages_csv() -> Response:
    args = params.parse(params.MessageParams())
    rows = message_store.export_messages(pool(), args, config().csv_export_limit)
    return _csv("messages", messages.MESSAGES_CSV, rows, messages.message_summary)
