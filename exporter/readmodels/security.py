"""Spam and attacks for the Grafana security dashboard: Rspamd actions, scores and symbols, Netfilter
events, blocked IPs and failed logins."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from exporter.readmodels.args import Args
from exporter.readmodels.format import fill, grafana_rows
from exporter.store import logs as log_store


def rspamd_actions(pool: ConnectionPool, args: Args) -> list[dict]:
    columns = tuple(a.replace(" ", "_") for a in log_store.RSPAMD_ACTIONS)
    return fill(log_store.rspamd_series(pool, args.start, args.end, args.step), args, (*columns, "avg_score"))


def rspamd_scores(pool: ConnectionPool, args: Args) -> list[dict]:
    return log_store.score_histogram(pool, args.start, args.end)


def top_symbols(pool: ConnectionPool, args: Args) -> list[dict]:
    return grafana_rows(log_store.top_symbols(pool, args.start, args.end, args.limit))


def netfilter_events(pool: ConnectionPool, args: Args) -> list[dict]:
    return fill(log_store.netfilter_series(pool, args.start, args.end, args.step), args, ("warnings", "bans", "unbans"))


def top_blocked_ips(pool: ConnectionPool, args: Args) -> list[dict]:
    return grafana_rows(log_store.top_blocked_ips(pool, args.start, args.end, args.limit), ("last_seen",))


def auth_failures(pool: ConnectionPool, args: Args) -> list[dict]:
    return grafana_rows(log_store.auth_failures(pool, args.start, args.end, args.limit), ("last_seen",))
