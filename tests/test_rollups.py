"""The hourly rollups behind long Grafana ranges give exactly what a scan of the messages gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.readmodels import catalog
from exporter.readmodels.args import Args
from exporter.readmodels.messages import quantile
from exporter.simulator.state import LOCAL_DOMAINS
from exporter.store import grafana as store
from exporter.store import ingest as ingest_store
from exporter.store import messages as message_store
from exporter.store.correlation.counts import DELAY_ROLLUP_BOUNDS
from tests.conftest import SIM_START
from tests.mailflow import scenario


def scanned(pool, start, end, direction=None, domain=None) -> dict[str, int]:
    """Independent count straight from the messages table."""
    where, params = "first_seen >= %s AND first_seen <= %s", [start, end]
    if direction:
        where += " AND direction = %s"
        params.append(direction)
    if domain:
        where += " AND (lower(split_part(sender, '@', 2)) = %s OR lower(split_part(first_recipient, '@', 2)) = %s)"
        params += [domain, domain]
    with pool.connection() as conn:
        rows = conn.execute(f"SELECT final_status, count(*) FROM messages WHERE {where} GROUP BY 1", params).fetchall()
        spam = conn.execute(f"SELECT count(*) FROM messages WHERE is_spam AND {where}", params).fetchone()[0]
    return {**dict(rows), "spam": spam, "total": sum(n for _, n in rows)}


@pytest.fixture(scope="module")
def flow(databases):
    with scenario(databases, start=SIM_START, rate=80, seed=9) as (rig, pool, _):
        rig.run(4 * 3600, 300)  # four hours: whole rollup hours plus partial ones at the range's ends
        yield rig, pool


@pytest.mark.parametrize(
    ("direction", "domain"),
    [(None, None), ("inbound", None), ("outbound", None), (None, "example.org"), (None, "example.net")],
)
def test_summary_from_rollups_equals_a_scan(flow, direction, domain):
    rig, pool = flow
    start = datetime.fromtimestamp(SIM_START + 1234, UTC)  # not on an hour
    end = datetime.fromtimestamp(rig.clock.now - 777, UTC)
    args = Args(start=start, end=end, direction=direction, domain=domain, local=tuple(LOCAL_DOMAINS))
    got = catalog.summary(pool, args)[0]
    expected = scanned(pool, start, end, direction, domain)
    assert expected["total"] > 100
    for key in ("total", "spam", *store.STATUSES):
        assert got[key] == expected.get(key, 0), key


def test_hourly_series_from_rollups_equals_a_scan(flow):
    rig, pool = flow
    start = datetime.fromtimestamp(SIM_START, UTC)
    end = datetime.fromtimestamp(rig.clock.now, UTC)
    args = Args(start=start, end=end, step=3600, local=tuple(LOCAL_DOMAINS))
    for row in catalog.message_flow(pool, args):
        bucket = datetime.fromtimestamp(row["time"] / 1000, UTC)
        expected = scanned(pool, max(bucket, start), min(bucket + timedelta(hours=1) - timedelta(microseconds=1), end))
        assert row["total"] == expected["total"] and row["delivered"] == expected.get("delivered", 0), bucket


def test_rollup_follows_status_changes_and_never_goes_negative(flow):
    rig, pool = flow
    with pool.connection() as conn:
        before = dict(conn.execute("SELECT status, sum(messages) FROM message_rollup WHERE domain = '' GROUP BY 1"))
    rig.run(3600, 300)  # deferred mail gets delivered, queued mail completes
    with pool.connection() as conn:
        after = dict(conn.execute("SELECT status, sum(messages) FROM message_rollup WHERE domain = '' GROUP BY 1"))
        negative = conn.execute("SELECT count(*) FROM message_rollup WHERE messages < 0").fetchone()[0]
        actual = dict(conn.execute("SELECT final_status, count(*) FROM messages GROUP BY 1"))
    assert negative == 0
    assert {k: v for k, v in after.items() if v} == actual
    assert after != before


def test_delay_percentiles_from_the_histogram_land_in_the_exact_ones_bucket(flow):
    rig, pool = flow
    start = datetime.fromtimestamp(SIM_START, UTC)
    end = datetime.fromtimestamp(rig.clock.now, UTC)
    assert start.date() == end.date()  # one daily bucket holds the whole run
    day = Args(start=start, end=end, step=86400, local=tuple(LOCAL_DOMAINS))
    [row] = [r for r in catalog.delivery_delay(pool, day) if r["p50"] is not None]
    with pool.connection() as conn:
        exact = conn.execute(
            "SELECT percentile_disc(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY delay)"
            " FROM message_recipients WHERE status = 'delivered' AND delay IS NOT NULL"
        ).fetchone()[0]
    bounds = (0.0, *DELAY_ROLLUP_BOUNDS)
    for name, value in zip(("p50", "p90", "p99"), exact, strict=True):
        upper = min(b for b in bounds if b >= value)
        lower = max(b for b in bounds if b < upper) if upper > 0 else 0.0
        assert lower <= row[name] <= upper, (name, row[name], value)
    scan = Args(start=start, end=end, step=86400, search="com", local=tuple(LOCAL_DOMAINS))  # forces the exact path
    assert any(r["p50"] is not None for r in catalog.delivery_delay(pool, scan))


def test_quantile_interpolates_like_histogram_quantile():
    buckets = [(1.0, 10), (2.0, 10), (float("inf"), 0)]
    assert quantile(0.5, buckets) == 1.0
    assert quantile(0.75, buckets) == 1.5
    assert quantile(0.5, [(1.0, 0), (float("inf"), 4)]) == 1.0
    assert quantile(0.5, []) is None


def test_top_lists_over_long_ranges_come_from_the_daily_rollup_and_match_a_scan(flow):
    rig, pool = flow
    end = datetime.fromtimestamp(rig.clock.now, UTC)
    args = Args(start=end - timedelta(days=7), end=end, limit=5, local=tuple(LOCAL_DOMAINS))
    got = catalog.QUERIES["top_senders"].run(pool, args)
    with pool.connection() as conn:
        expected = conn.execute(
            """SELECT lower(sender), count(*), count(*) FILTER (WHERE final_status = 'delivered'),
                      count(*) FILTER (WHERE final_status IN ('bounced', 'expired', 'rejected')),
                      count(*) FILTER (WHERE is_spam)
               FROM messages WHERE sender <> '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"""
        ).fetchall()
        attempts = conn.execute(
            "SELECT count(*) FROM postfix_lines WHERE kind = 'delivery' AND status = 'deferred'"
        ).fetchone()[0]
    assert [(r["name"], r["count"], r["delivered"], r["failed"], r["spam"]) for r in got] == [
        tuple(e) for e in expected
    ]
    reasons = catalog.QUERIES["top_defer_reasons"].run(pool, Args(start=args.start, end=end, limit=1000))
    short = catalog.QUERIES["top_defer_reasons"].run(pool, Args(start=end - timedelta(days=2), end=end, limit=1000))
    assert sum(r["count"] for r in reasons) == sum(r["count"] for r in short) == attempts > 0


MONTH_END = int(datetime(2026, 9, 29, 12, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def month_end(databases):
    """Four days of light traffic across the end of September: top-list rows of two months."""
    with scenario(databases, start=MONTH_END, rate=0.5, seed=5) as (rig, pool, _):
        rig.run(4 * 86400, 3600)
        yield rig, pool


def scanned_top(pool, what: str, first_day: datetime, last_day: datetime) -> list[tuple]:
    """Independent top list straight from the messages first seen on the whole UTC days given."""
    expression = {"senders": "lower(sender)", "recipient_domains": "lower(split_part(first_recipient, '@', 2))"}[what]
    with pool.connection() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                f"""SELECT {expression}, count(*), count(*) FILTER (WHERE final_status = 'delivered'),
                           count(*) FILTER (WHERE final_status IN ('bounced', 'expired', 'rejected')),
                           count(*) FILTER (WHERE is_spam)
                    FROM messages WHERE {expression} <> '' AND first_seen >= %s AND first_seen < %s
                    GROUP BY 1 ORDER BY 2 DESC, 1""",
                (first_day, last_day + timedelta(days=1)),
            )
        ]


def top(pool, what: str, start: datetime, end: datetime) -> list[tuple]:
    rows = catalog.QUERIES[f"top_{what}"].run(pool, Args(start=start, end=end, limit=100_000))
    return [(r["name"], r["count"], r["delivered"], r["failed"], r["spam"]) for r in rows]


def day_of(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("what", ["senders", "recipient_domains"])
@pytest.mark.parametrize(("from_day", "to_day"), [(0, 4), (0.6, 3.7), (-20, 40), (1.6, 4.7)])
def test_top_lists_across_a_month_boundary_count_the_whole_days_of_the_range(month_end, what, from_day, to_day):
    _, pool = month_end
    start = datetime.fromtimestamp(MONTH_END + from_day * 86400, UTC)
    end = datetime.fromtimestamp(MONTH_END + to_day * 86400, UTC)
    expected = scanned_top(pool, what, day_of(start), day_of(end))
    assert len(expected) > 3 and sum(row[1] for row in expected) > 500
    assert top(pool, what, start, end) == expected


def test_retention_drops_the_top_list_days_before_the_cutoff(month_end):
    rig, pool = month_end
    start, end = datetime.fromtimestamp(MONTH_END, UTC), datetime.fromtimestamp(rig.clock.now, UTC)
    cutoff = datetime(2026, 10, 2, 9, tzinfo=UTC)
    expected = scanned_top(pool, "senders", day_of(cutoff), day_of(end))  # before retention deletes messages
    assert top(pool, "senders", start, end) != expected
    ingest_store.delete_before(pool, cutoff)
    assert top(pool, "senders", start, end) == expected
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM message_facets WHERE month < '2026-10-01'").fetchone()[0] == 0


@pytest.mark.parametrize("term", ["example", "alice@example", "invoice", "no-such-word-anywhere"])
def test_search_gives_the_same_page_whichever_plan_the_term_gets(flow, monkeypatch, term):
    """Common terms walk the time index, rare ones read the GIN index first: same answer either way."""
    _, pool = flow
    filters = {"search": term}
    by_ids = message_store.messages_page(pool, filters, 1, 50)
    monkeypatch.setattr(message_store, "COMMON_TERM", 0)  # every term counts as common now
    by_walk = message_store.messages_page(pool, filters, 1, 50)
    assert by_ids == by_walk
    if term != "no-such-word-anywhere":
        assert by_ids[0] > 0
