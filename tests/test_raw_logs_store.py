"""Raw lines of every service in PostgreSQL: stored as sent, found by every filter exactly as a plain
scan would find them, counted per minute, and dropped by whole days."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config_values import RAW_LOG_SERVICES
from exporter.parsers.lines import number_window
from exporter.services import raw_logs
from exporter.store import raw_logs as store
from exporter.store import raw_search
from exporter.store.raw_search import LabelMatch, LineQuery, TextMatch
from tests.test_raw_logs_parsing import SECTION_1


def _load(pool, service: str, items: list[dict]) -> int:
    """Load newest-first items the way the ingestion does; return how many lines were new."""
    with pool.connection() as conn, conn.transaction():
        return raw_logs.store_rows(conn, raw_logs.rows(service, number_window(service, items)))


def _count(pool, table: str) -> int:
    with pool.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _find(pool, query: LineQuery) -> list[raw_search.RawRow]:
    with pool.connection() as conn:
        return raw_search.find(conn, query)


def test_every_reference_item_is_kept_as_sent_and_loads_once(pool):
    for service, raw, epoch, level, program, message in SECTION_1:
        assert _load(pool, service, [json.loads(raw)]) == 1
        assert _load(pool, service, [json.loads(raw)]) == 0  # the same window again adds nothing
        (row,) = _find(pool, LineQuery(services=(service,), text=(TextMatch("|=", message),)))
        assert (row.at, row.level, row.program, row.message) == (
            datetime.fromtimestamp(epoch, UTC),
            level,
            program,
            message,
        )
        assert row.item == json.loads(raw)
    assert _count(pool, "raw_lines") == len(SECTION_1)
    counted = {c.service: c.lines for c in store.service_counts(pool)}
    assert sum(counted.values()) == len(SECTION_1) and set(counted) == {s for s, *_ in SECTION_1}


def test_an_overlapping_window_stores_only_its_new_lines_and_repeated_lines_stay(pool):
    now = int(datetime.now(UTC).timestamp())
    same = {"time": str(now - 50), "priority": "info", "program": "dovecot", "message": "imap-login: Login: user=<a>"}
    first = [dict(same), dict(same), {**same, "time": str(now - 60), "message": "older"}]
    assert _load(pool, "dovecot", first) == 3
    newer = {**same, "time": str(now - 10), "message": "newest"}
    assert _load(pool, "dovecot", [newer, dict(same), *first]) == 2  # one more repeat and the newest
    rows = _find(pool, LineQuery(services=("dovecot",), limit=10))
    assert [r.message for r in rows] == ["newest", *["imap-login: Login: user=<a>"] * 3, "older"]


def test_nul_characters_are_replaced_not_refused(pool):
    now = int(datetime.now(UTC).timestamp())
    item = {"time": now, "message": "acme\u0000 - text", "extra": "a\u0000b"}
    assert _load(pool, "acme", [item]) == 1
    (row,) = _find(pool, LineQuery(services=("acme",)))
    assert row.message == "acme\ufffd - text" and row.item["extra"] == "a\ufffdb"


WORDS = ["NOQUEUE:", "reject", "Rejected", "user=<Ann@Example.org>", "it's", "back\\slash", "héllo", "x", "a b"]


@pytest.fixture(scope="module")
def corpus(databases):
    """Lines of three services over two days, loaded in many small windows so searches cross many
    blocks (and several batches of blocks); returned with a pool on their own database."""
    from exporter.store.database import create_pool, migrate

    url = databases.create()
    migrate(url)
    pool = create_pool(url, 2)
    rng = random.Random(22)
    start = int(datetime(2026, 11, 30, 22, tzinfo=UTC).timestamp())
    lines = []
    for n in range(6000):
        service = rng.choice(["postfix", "dovecot", "sogo"])
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        priority = rng.choice(["info", "info", "err", "warning"])
        lines.append(
            (service, {"time": str(start + n * 20), "priority": priority, "program": service, "message": text})
        )
    for chunk in range(0, len(lines), 7):
        for service in ("postfix", "dovecot", "sogo"):
            window = [item for s, item in lines[chunk : chunk + 7] if s == service]
            if window:
                _load(pool, service, window[::-1])
    yield pool, lines
    pool.close()


def _expected(lines, query: LineQuery) -> list[str]:
    """The plain scan a search must equal: (service, time, text) of every matching line, in order."""
    hits = []
    for n, (service, item) in enumerate(lines):
        text = item["message"]
        ok = service in query.services
        for m in query.text:
            has = m.value in text if m.case_sensitive else m.value.lower() in text.lower()
            ok = ok and (has if m.op == "|=" else not has)
        if ok:
            hits.append((int(item["time"]), n, f"{service}:{text}"))
    hits.sort(reverse=query.newest_first)
    return [h[2] for h in hits][query.offset : query.offset + query.limit]


TERMS = st.sampled_from(
    ["reject", "eject", "ect u", "NOQUEUE", "noqueue", "t's", "\\sl", "éll", "Ann@", "a b", "x"]
) | (st.text(alphabet="abcertxjNOQU'\\é <>@", min_size=1, max_size=6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    terms=st.lists(st.tuples(TERMS, st.booleans(), st.booleans()), min_size=1, max_size=2),
    newest_first=st.booleans(),
    limit=st.sampled_from([1, 7, 100, 1000]),
    offset=st.sampled_from([0, 3, 250]),
)
def test_searches_find_exactly_what_a_scan_finds(corpus, terms, newest_first, limit, offset):
    pool, lines = corpus
    text = tuple(TextMatch("|=" if keep else "!=", term, sensitive) for term, keep, sensitive in terms)
    query = LineQuery(services=("postfix", "sogo"), text=text, newest_first=newest_first, limit=limit, offset=offset)
    found = [f"{r.service}:{r.message}" for r in _find(pool, query)]
    assert found == _expected(lines, query)


def test_time_range_labels_and_after_id(corpus):
    pool, lines = corpus
    start = datetime(2026, 12, 1, 0, tzinfo=UTC)
    end = start + timedelta(hours=1)
    query = LineQuery(
        services=RAW_LOG_SERVICES,
        labels=(LabelMatch("service", "=~", "post.*|sogo"), LabelMatch("level", "!=", "info")),
        start=start,
        end=end,
        newest_first=False,
        limit=5000,
    )
    rows = _find(pool, query)
    expected = [
        item["message"]
        for service, item in lines
        if service in ("postfix", "sogo")
        and item["priority"] != "info"
        and start.timestamp() <= int(item["time"]) < end.timestamp()
    ]
    assert [r.message for r in rows] == expected and rows
    assert all(r.level in ("error", "warning") and start <= r.at < end for r in rows)
    later = _find(pool, LineQuery(services=("postfix",), after_id=rows[-1].id, newest_first=False, limit=5000))
    assert later and min(r.id for r in later) > rows[-1].id
    assert not _find(pool, LineQuery(services=RAW_LOG_SERVICES, labels=(LabelMatch("program", "=", ""),)))


def test_a_regex_postgresql_refuses_is_a_bad_pattern(corpus):
    pool, _ = corpus
    with pool.connection() as conn:
        for query in (
            LineQuery(services=("postfix",), text=(TextMatch("|~", "(("),)),
            LineQuery(services=("postfix",), labels=(LabelMatch("level", "=~", "[z-a]"),)),
        ):
            with pytest.raises(raw_search.BadPattern):
                raw_search.check_patterns(conn, query)
        raw_search.check_patterns(conn, LineQuery(services=("postfix",), text=(TextMatch("|~", "(?i)rej.ct"),)))
        rows = raw_search.find(conn, LineQuery(services=("postfix",), text=(TextMatch("|~", "rej[e]ct(ed)? "),)))
        assert rows and all("reject " in r.message or "rejected " in r.message for r in rows)


def test_retention_drops_whole_days_and_keeps_the_rest(pool):
    now = datetime.now(UTC)
    old = int((now - timedelta(days=5)).timestamp())
    recent = int(now.timestamp()) - 60
    _load(pool, "sogo", [{"time": str(recent), "program": "sogod", "priority": "info", "message": "kept login"}])
    _load(pool, "sogo", [{"time": str(old), "program": "sogod", "priority": "info", "message": "old login"}])
    dropped = raw_logs.maintain(pool, retention_days=2)
    assert (now - timedelta(days=5)).date().isoformat() in dropped
    assert [r.message for r in _find(pool, LineQuery(services=("sogo",), text=(TextMatch("|=", "login"),)))] == [
        "kept login"
    ]
    assert _count(pool, "raw_line_counts") == 1 and _count(pool, "raw_line_blocks") == 1
    with pool.connection() as conn:
        days = {n for (n,) in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'raw_lines_p%'")}
    assert f"raw_lines_p{(now + timedelta(days=2)).date():%Y%m%d}" in days  # created ahead of time


def test_lines_older_than_retention_are_not_stored_by_the_ingestion_rows():
    settings_ = raw_logs.RawLogs(retention_days=2)
    cutoff = raw_logs.oldest_kept(settings_, datetime(2026, 12, 4, 13, tzinfo=UTC))
    assert cutoff == datetime(2026, 12, 2, tzinfo=UTC)
    items = [{"time": str(int(cutoff.timestamp())), "message": "m", "program": "p", "priority": "info"}]
    items.append({"time": str(int(cutoff.timestamp()) - 1), "message": "m", "program": "p", "priority": "info"})
    kept = raw_logs.rows("postfix", number_window("postfix", items), cutoff)
    assert len(kept.lines) == 1 and kept.lines[0][0] == cutoff


def test_partitions_are_made_per_database(databases):
    """A day created in one database says nothing about another (no process-wide cache)."""
    from exporter.store.database import create_pool, migrate

    for _ in range(2):
        url = databases.create()
        migrate(url)
        with create_pool(url, 1) as pool:
            _load(
                pool, "api", [{"time": 1790000000, "method": "GET", "uri": "/api/v1/get/logs/api", "remote": "1.2.3.4"}]
            )
            assert _count(pool, "raw_lines") == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM raw_lines_p" + f"{date(2026, 9, 21):%Y%m%d}").fetchone()[0] == 1


def test_a_line_too_big_for_the_index_is_still_found(pool):
    """A line with more distinct grams than a tsvector holds leaves its block unindexed, never unsearchable."""
    rng = random.Random(5)
    huge = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789ÄÖÜ") for _ in range(200_000))
    now = int(datetime.now(UTC).timestamp())
    items = [{"time": str(now), "priority": "info", "program": "dovecot", "message": f"imap(a@b): {huge}"}]
    items.append({"time": str(now - 1), "priority": "info", "program": "dovecot", "message": "imap-login: Login"})
    assert _load(pool, "dovecot", items) == 2
    with pool.connection() as conn:
        counts = conn.execute("SELECT count(*) FILTER (WHERE NOT complete), count(*) FROM raw_line_blocks").fetchone()
    assert counts == (1, 2)  # the block was split until the huge line stood alone
    needle = huge[123_456:123_470]
    (row,) = _find(pool, LineQuery(services=("dovecot",), text=(TextMatch("|=", needle),)))
    assert row.message == f"imap(a@b): {huge}"
    found = _find(pool, LineQuery(services=("dovecot",), text=(TextMatch("|=", "Login"),)))
    assert [r.message for r in found] == ["imap-login: Login"]


def test_filters_true_of_every_line_change_nothing(corpus):
    """What the Logs dashboard sends while its filter and search are unset."""
    pool, _ = corpus
    base = LineQuery(services=("postfix",), text=(TextMatch("|=", "eject"),), limit=50)
    trivial = (TextMatch("|~", ".*"), TextMatch("|~", "(?i)"), TextMatch("|=", ""))
    assert _find(pool, LineQuery(services=("postfix",), text=base.text + trivial, limit=50)) == _find(pool, base)
    assert raw_search.gram_query(LineQuery(services=("postfix",), text=base.text + trivial)) is not None
