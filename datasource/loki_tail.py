"""Loki's live tail: `WS /loki/api/v1/tail?query=…&start=…&limit=…&delay_for=…`.

Grafana's server dials this websocket itself, without credentials (grafana pkg/tsdb/loki/streaming.go:
`websocket.DefaultDialer.Dial(url, nil)`), so exporter/http/auth.py lets a handshake through only from
LOKI_TAIL_ALLOWED_NETWORKS or with valid credentials, and never from a page of another site; the
arguments are checked before the upgrade too, so a bad query is a 400 rather than a dead socket.

A tail first sends the newest `limit` lines since `start` (default: an hour ago), oldest first, then
sleeps on the process's TailHub (one LISTEN per process) and reads the lines stored after the last
id it saw with its own filters in PostgreSQL. An idle tail is a thread in a timed wait: no query, no
CPU. Each open tail holds one of gunicorn's threads (exporter/serve.py sizes the pool for that).
`delay_for` is accepted (0 to 5, as Loki) and has nothing to wait for: lines are sent once committed.
"""

from __future__ import annotations

from typing import Any

from flask import g, json, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server

from datasource import loki_params as lp
from datasource.loki import API, bp, scope
from exporter.http import context
from exporter.http.errors import InvalidParameter
from exporter.parsers.logql import LogQuery
from exporter.readmodels import loki
from exporter.services.raw_tail import hub

sock = Sock()
WAKE_SECONDS = 5.0  # an idle tail checks this often whether its client has gone
BATCH = 1000  # lines one wake-up sends at most; more in one commit would drown a browser anyway


@bp.before_request
def _tail_arguments() -> None:
    """Check the tail's arguments before the websocket handshake."""
    if request.endpoint != "loki.tail":
        return
    args = lp.load_args(lp.TailParams(), request.args)
    parsed = lp.logql(args["query"])
    if not isinstance(parsed, LogQuery):
        raise InvalidParameter("query: a live tail needs a log query, not a metric query")
    g.loki_tail = (args, parsed)


def _send(ws: Server, the_scope: loki.Scope, rows: list[Any]) -> None:
    if rows:
        ws.send(json.dumps(loki.tail_frame(the_scope, rows)))


@sock.route(f"{API}/tail", bp=bp)
def tail(ws: Server) -> None:
    args, parsed = g.loki_tail
    pool, the_scope = context.pool(), scope()
    waiter = hub(pool.conninfo)
    seen = loki.newest_id(pool)
    first = loki.line_query(the_scope, parsed, start=args["start"], limit=args["limit"], newest_first=True)
    initial = list(reversed(loki.find_lines(pool, the_scope, first)))
    _send(ws, the_scope, initial)
    already = {row.id for row in initial if row.id > seen}
    try:
        while ws.connected:
            latest = waiter.wait(seen, WAKE_SECONDS)
            if latest <= seen:
                continue
            query = loki.line_query(the_scope, parsed, after_id=seen, limit=BATCH, newest_first=False)
            rows = [row for row in loki.find_lines(pool, the_scope, query) if row.id not in already]
            already.clear()
            seen = latest
            _send(ws, the_scope, rows)
    except ConnectionClosed:
        return
