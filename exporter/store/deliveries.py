"""Storing Dovecot delivery lines (what the mailbox did with a message); correlation reads them later."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from exporter.store.ingest import LINE_WRITER_LOCK_KEY

COLUMNS = ("at", "recipient", "session_id", "message_id", "outcome", "mailbox", "detail", "line_key", "occurrence")


def load(conn: psycopg.Connection, rows: Sequence[tuple]) -> int:
    """Store the delivery rows (`COLUMNS` order, oldest first) not stored yet; return how many were new.

    The same line (line_key, occurrence) loaded twice is stored once. Runs in the caller's transaction
    and, like the log lines, under the line writers' lock: ids are committed in order, so correlation's
    watermark never passes a delivery that is not committed yet."""
    if not rows:
        return 0
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LINE_WRITER_LOCK_KEY,))
    conn.execute("DROP TABLE IF EXISTS incoming_deliveries")
    conn.execute(
        "CREATE TEMP TABLE incoming_deliveries ON COMMIT DROP AS "
        f"SELECT {', '.join(COLUMNS)}, 0::bigint AS ord FROM dovecot_deliveries WITH NO DATA"
    )
    with conn.cursor().copy(f"COPY incoming_deliveries ({', '.join(COLUMNS)}, ord) FROM STDIN") as copy:
        for ord_, row in enumerate(rows):
            copy.write_row((*row, ord_))
    return conn.execute(
        f"""INSERT INTO dovecot_deliveries ({", ".join(COLUMNS)})
            SELECT {", ".join(COLUMNS)} FROM incoming_deliveries ORDER BY ord
            ON CONFLICT (line_key, occurrence) DO NOTHING"""
    ).rowcount
