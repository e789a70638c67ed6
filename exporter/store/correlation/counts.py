"""What one correlation run counts, exactly once (each line is in exactly one batch): Prometheus
counters of its events, the hourly delivery delay histogram and the daily deferral and bounce reasons."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from exporter.store import counters

# Histogram bounds (seconds) of delay_rollup: fine enough for percentiles from seconds to days.
DELAY_ROLLUP_BOUNDS = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    172800.0,
    432000.0,
)

# Events of the batch, counted exactly once: each line is in exactly one batch. Run after
# recompute() so deliveries carry their message's current direction.
# Delivered recipients' delays also go into hourly histogram buckets (delay_rollup: non-cumulative,
# the smallest bound that fits), from the same join of deliveries to their messages.
_BATCH_DELIVERIES = """
    dl AS (SELECT m.direction, b.status, b.delay, b.logged_at
           FROM batch b JOIN agg a ON a.queue_id = b.queue_id JOIN messages m ON m.id = a.id
           WHERE b.kind = 'delivery' AND b.status IS NOT NULL),
    delays AS (
        INSERT INTO delay_rollup AS d (bucket, direction, le, count)
        SELECT date_trunc('hour', logged_at), direction,
               coalesce((%(bounds)s::float8[])[mg_bound_index(delay, %(bounds)s::float8[])], 'Infinity'), count(*)
        FROM dl WHERE status = 'delivered' AND delay IS NOT NULL
        GROUP BY 1, 2, 3
        ON CONFLICT (bucket, direction, le) DO UPDATE SET count = d.count + EXCLUDED.count
    )"""
_BATCH_EVENTS = """
    SELECT 'deliveries', jsonb_build_object('direction', direction, 'status', status), count(*)
    FROM dl GROUP BY direction, status
    UNION ALL
    SELECT CASE status WHEN 'deferred' THEN 'deferrals' ELSE 'bounces' END, jsonb_build_object('remote', remote),
           count(*)
    FROM (SELECT status, mg_remote_class(split_part(recipient, '@', 2), relay, %(local)s) AS remote
          FROM batch WHERE kind = 'delivery' AND status IN ('deferred', 'bounced')) x
    GROUP BY status, remote
    UNION ALL
    SELECT 'delivery_delay_seconds_bucket', jsonb_build_object('direction', direction, 'le', le::text), sum(n)
    FROM (SELECT direction, mg_bound_index(delay, %(buckets)s::float8[]) AS i, count(*) AS n
          FROM dl WHERE status = 'delivered' AND delay IS NOT NULL GROUP BY 1, 2) own  -- each delay's own bucket
    JOIN unnest(%(buckets)s::float8[]) WITH ORDINALITY AS b (le, i) ON own.i <= b.i  -- and every one above it
    GROUP BY direction, le
    UNION ALL
    SELECT 'delivery_delay_seconds_' || part, jsonb_build_object('direction', direction),
           CASE part WHEN 'sum' THEN sum(delay) ELSE count(*) END
    FROM dl CROSS JOIN (VALUES ('sum'), ('count')) AS p (part)
    WHERE status = 'delivered' AND delay IS NOT NULL GROUP BY direction, part
    UNION ALL
    SELECT 'rejects', jsonb_build_object('reason', reason), count(*) FROM (
        SELECT CASE
               WHEN kind = 'postscreen_pregreet' THEN 'pregreet'
               WHEN reject_class IN ('relay_denied', 'rbl', 'unknown_recipient', 'sender_rejected', 'greylist',
                                     'spam') THEN reject_class
               WHEN kind = 'milter_reject' THEN 'spam'
               ELSE 'other' END AS reason
        FROM batch WHERE kind IN ('noqueue_reject', 'rcpt_reject', 'milter_reject', 'postscreen_pregreet')) x
    GROUP BY reason
    UNION ALL
    SELECT 'sasl_auth_failures', '{}'::jsonb, count(*) FROM batch WHERE kind = 'sasl_failure' HAVING count(*) > 0
    UNION ALL
    SELECT 'rspamd_actions', jsonb_build_object('action', action, 'direction', direction), count(*) FROM (
        SELECT action, CASE WHEN "user" IS NULL THEN 'inbound' ELSE 'outbound' END AS direction
        FROM rspamd_rows WHERE id > %(rspamd_from)s AND id <= %(rspamd_to)s) x
    GROUP BY action, direction
"""


# Deferral and bounce replies per day, numbers masked so the same reply from different hosts groups.
REASON_MASK = "left(regexp_replace(coalesce({reply}, {dsn}, 'unknown'), '[0-9]+', 'N', 'g'), 200)"
_REASON_ROLLUP = f"""
    INSERT INTO reason_rollup AS r (bucket, status, reason, count)
    SELECT date_trunc('day', logged_at), status, {REASON_MASK.format(reply="reply", dsn="dsn")}, count(*)
    FROM batch WHERE kind = 'delivery' AND status IN ('deferred', 'bounced')
    GROUP BY 1, 2, 3
    ON CONFLICT (status, bucket, reason) DO UPDATE SET count = r.count + EXCLUDED.count
"""


def count_batch(
    conn: psycopg.Connection, local_domains: Sequence[str], rspamd_from: int, rspamd_to: int, lines: int
) -> None:
    """Count the batch's events (rspamd rows with ids in (rspamd_from, rspamd_to]) and, when it had
    lines, their deferral and bounce reasons. Run after recompute() so deliveries carry their
    message's current direction."""
    counters.add(
        conn,
        _BATCH_EVENTS,
        {
            "local": [d.lower() for d in local_domains],
            "buckets": list(counters.DELAY_BUCKETS),
            "rspamd_from": rspamd_from,
            "rspamd_to": rspamd_to,
            "bounds": list(DELAY_ROLLUP_BOUNDS),
        },
        ctes=_BATCH_DELIVERIES,
    )
    if lines:
        conn.execute(_REASON_ROLLUP)
