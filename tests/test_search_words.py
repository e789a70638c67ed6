"""Search words of raw Postfix lines: the loader's split equals the database's, and searches find lines."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from exporter.parsers.words import words_literal
from exporter.services.ingest import load_window
from exporter.store import logs as log_store
from exporter.store.logs import postfix_page, postfix_where, search_blocks

REAL_LINES = [
    "0E873A0000C6: client=mail-out.shop.example.com[185.241.194.202]",
    "0E873A0000C6: to=<bob@example.org>, relay=dovecot[172.22.1.250]:24, delay=1.13, "
    "delays=0.68/0.01/0.02/0.42, dsn=2.0.0, status=sent (250 2.0.0 <bob@example.org> OrOwd8S7Ba16j7pGLou3SH Saved)",
    "NOQUEUE: reject: RCPT from unknown[2a01:4f8:c2c:5a1b::1]: 554 5.7.1 <x@y.org>: Relay access denied; "
    "from=<a@b.c> to=<x@y.org> proto=ESMTP helo=<ylmf-pc>",
    "warning: hostname 1.2.3.4 does not resolve to address 5.6.7.8: Name or service not known",
    "4bQ9pz3sTHz1xpm: sasl_method=PLAIN, sasl_username=straße@exämple.org İ \u212a",
    "x" * 300 + " repeated " * 300,
    "",
]


def test_line_words_are_what_the_database_computes(db_url):
    with psycopg.connect(db_url) as conn:
        for line in REAL_LINES:
            python, database = conn.execute(
                "SELECT %s::tsvector::text, mg_line_words(%s)::text", (words_literal([line]), line)
            ).fetchone()
            assert python == database, line


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=120))
def test_line_words_match_the_database_for_any_text(db_url, text):
    with psycopg.connect(db_url) as conn:
        python, database = conn.execute(
            "SELECT %s::tsvector::text, mg_line_words(%s)::text", (words_literal([text]), text)
        ).fetchone()
    assert python == database


def test_search_finds_whole_queue_ids_prefixes_and_phrases(pool):
    lines = [
        "0E873A0000C6: removed",
        "12FB3A141E: to=<bob@example.org>, status=sent (250 2.0.0 Ok: queued)",
        "connect from mail.example.com[1.2.3.4]",
        "lost connection after AUTH from unknown[5.6.7.8]",
        "warning: bad name a\u212ab and x\u0130y from stra\u00dfe",  # KELVIN SIGN, I WITH DOT ABOVE, sharp s
    ]
    items = [
        {"time": 1_763_000_000 + n, "program": "postfix/smtpd", "priority": "info", "message": text}
        for n, text in enumerate(lines)
    ]
    with pool.connection() as conn:
        assert load_window(conn, "postfix", items[::-1]) == (5, 0)

    def found(term: str) -> list[str]:
        """What /api/logs/postfix?search= lists, oldest first."""
        return [row["message"] for row in reversed(postfix_page(pool, {"search": term}, 1, 100)[1])]

    assert found("0E873A0000C6") == [lines[0]]  # whole hex id (the text-search parser split it at the "e")
    assert found("0e873a") == [lines[0]]  # a prefix of the last word
    assert found("bob@example.org") == [lines[1]]
    assert found("Ok: queued") == [lines[1]]  # words adjacent and in order
    assert found("queued Ok") == []
    assert found("Ok 2.0.0") == []  # every word is in the line, but not next to each other
    assert found("connection after") == [lines[3]]
    assert found("after connection") == []
    assert found("1.2.3.4") == [lines[2]]
    # a non-ASCII character separates words, even one whose lower case is an ASCII letter
    assert found("a b and") == [lines[4]]
    assert found("x y from stra e") == [lines[4]]
    assert found("akb") == found("xiy") == found("strasse") == []
    assert found("example.o") == [lines[1]]  # example.org, not example.com
    assert found("example.c") == [lines[2]]
    with pool.connection() as conn:
        assert conn.execute("SELECT mg_words_query('  ;; ')").fetchone()[0] is None


def test_line_search_reads_only_the_blocks_the_words_index_finds(pool):
    with pool.connection() as conn:
        assert load_window(conn, "postfix", _items(0, 1300, _line)) == (1300, 0)
        conn.execute("SET enable_seqscan = off")  # a tiny table would be scanned: ask what the index can do
        lookup = conn.execute(
            "EXPLAIN SELECT first_id, last_id FROM postfix_line_words WHERE words @@ mg_words_query('needle')"
        ).fetchall()
        assert "postfix_line_words_words" in "\n".join(row[0] for row in lookup)
        conn.execute("RESET enable_seqscan")
        ranges = search_blocks(conn, "user700@example.org")
        assert ranges is not None and len(ranges) == 1  # the one block of line 700 (lines 512 to 1023)
        first, last = ranges[0]
        assert last - first == 511
        where = postfix_where(conn, {"search": "user700@example.org"})
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                sql.SQL("EXPLAIN SELECT p.id FROM postfix_lines p") + where.sql(), where.params
            ).fetchall()
        )
        assert "postfix_lines_pkey" in plan and "Seq Scan" not in plan
        assert search_blocks(conn, "example") is not None  # 3 adjacent blocks: one range
        assert search_blocks(conn, "nowhere") == []


def _items(first: int, count: int, text) -> list[dict]:
    """Postfix items (newest first, as mailcow lists them) whose message is text(n)."""
    items = [
        {"time": 1_763_100_000 + n // 10, "program": "postfix/lmtp", "priority": "info", "message": text(n)}
        for n in range(first, first + count)
    ]
    return items[::-1]


def _line(n: int) -> str:
    word = " needle" if n in (3, 700, 1299, 2015) else ""
    return f"{n:05X}A: to=<user{n}@example.org>, relay=dovecot, status=sent{word}"


def test_search_reads_only_the_lines_of_blocks_holding_the_words(pool, monkeypatch):
    with pool.connection() as conn:
        assert load_window(conn, "postfix", _items(0, 1300, _line)) == (1300, 0)
        blocks = conn.execute("SELECT count(*) FROM postfix_line_words").fetchone()[0]
    assert blocks == 3  # 512 + 512 + 276 lines

    def found(term: str) -> list[str]:
        return sorted(row["message"] for row in postfix_page(pool, {"search": term}, 1, 500)[1])

    assert found("needle") == sorted(_line(n) for n in (3, 700, 1299))
    assert found("user700@example.org") == [_line(700)]
    assert found("user70") == sorted(_line(n) for n in [70, *range(700, 710)])
    assert found("sent needle") == found("needle")
    assert found("needle sent") == []
    # a term in many blocks: every line is read and checked instead, with the same answers
    expected = {term: found(term) for term in ("needle", "user70", "sent needle", "needle sent")}
    monkeypatch.setattr(log_store, "MAX_SEARCH_RANGES", 0)
    with pool.connection() as conn:
        assert log_store.search_blocks(conn, "needle") is None
    assert {term: found(term) for term in expected} == expected


def test_lines_stored_meanwhile_by_another_writer_are_indexed_too(pool):
    """Two writers load overlapping windows at once: the second one waits for the first one's commit,
    then stores only the lines it lacked, words included."""

    def second() -> tuple[int, int]:
        with pool.connection() as conn:
            return load_window(conn, "postfix", _items(2000, 20, _line))

    first = pool.getconn()
    try:
        with ThreadPoolExecutor(1) as executor:
            with first.transaction():
                assert load_window(first, "postfix", _items(2000, 10, _line)) == (10, 0)
                later = executor.submit(second)
                time.sleep(1)  # the second writer waits for the first one
                assert not later.done()
            assert later.result(timeout=30) == (10, 0)  # after the first one committed: the 10 it lacked
    finally:
        pool.putconn(first)
    rows = postfix_page(pool, {"search": "needle"}, 1, 10)[1]
    assert [row["message"] for row in rows] == [_line(2015)]
    assert postfix_page(pool, {"search": "example"}, 1, 100)[0] == 20
