"""Set-based correlation of new log lines into messages with per-recipient status.

One run reads the Postfix lines, rspamd rows and Dovecot deliveries added since the last run
(watermarks in `correlation_state`) and updates only the messages they touch, in one transaction. Message
status precedence (documented in README "Message status"):

    rejected (refused at our door, nothing delivered) > queued (no recipient line yet)
    > deferred > bounced > expired > rejected (some recipients) > delivered > discarded

`expired` comes from Postfix (`status=expired`) or from `recompute.expire()` after a horizon without any
line; neither overrides a reject or a spam verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from exporter.parsers.postfix import EVENT_FIELDS
from exporter.store.correlation import counts, deliveries, recompute

BATCH_LINES = 200_000
RSPAMD_WINDOW = timedelta(minutes=10)
# What correlation reads of a line: its parsed fields (not the raw text or its search words).
_BATCH_COLUMNS = ", ".join(("id", "logged_at", "program", "line_key", "occurrence", *EVENT_FIELDS))
# The lines without a queue id that correlation reads (rejected attempts, SASL failures for the counters).
# The others (connects, disconnects, postscreen chatter: about half of a busy server's lines) are left
# out of the batch, which every statement below scans.
_UNQUEUED_KINDS = "'noqueue_reject', 'postscreen_pregreet', 'sasl_failure'"


def _latest(column: str, kinds: str) -> str:
    """The value from the newest of the given kinds' lines in `newest` (NULL if none)."""
    return f"(array_agg({column} ORDER BY logged_at DESC, id DESC) FILTER (WHERE kind IN ({kinds})))[1]"


def _of(column: str, kind: str) -> str:
    """The value from this queue id's newest line of one kind (`newest` holds one line per kind)."""
    return f"max({column}) FILTER (WHERE kind = '{kind}')"


# Every queue id the batch mentions, with each attribute from the newest line of the kind that
# carries it, and its message id: the stored message's, or a new one for a queue id seen first now.
# One sort picks the newest line per queue id and kind; aggregating with ORDER BY straight from the
# batch would sort every group once per attribute.
_QUEUE_AGG = f"""
    CREATE TEMP TABLE agg ON COMMIT DROP AS
    WITH span AS (
        SELECT queue_id, min(logged_at) AS first_seen, max(logged_at) AS last_seen,
               max(logged_at) FILTER (WHERE kind IN ('removed', 'deleted')) AS removed_at,
               bool_or(kind = 'deleted') AS deleted,
               bool_or(kind = 'expired') AS expired,
               bool_or(kind = 'milter_reject' AND reject_class = 'spam') AS spam_reject
        FROM batch WHERE queue_id IS NOT NULL GROUP BY queue_id
    ),
    newest AS (
        SELECT DISTINCT ON (queue_id, kind) queue_id, kind, logged_at, id, program, client_host, client_ip,
               sasl_method, sasl_username, message_id, sender, size, nrcpt, dsn, reject_class, reply, helo,
               related_queue_id
        FROM batch
        WHERE queue_id IS NOT NULL AND kind IN ('client', 'pickup', 'message_id', 'queued', 'expired', 'milter_reject',
                                                'milter_discard', 'bounce_notification', 'hold', 'unhold')
        ORDER BY queue_id, kind, logged_at DESC, id DESC
    ),
    attrs AS (
        SELECT queue_id,
               coalesce({_of("client_host", "client")}, {_of("client_host", "milter_reject")}) AS client_host,
               coalesce({_of("client_ip", "client")}, {_of("client_ip", "milter_reject")}) AS client_ip,
               {_of("sasl_method", "client")} AS sasl_method,
               {_of("sasl_username", "client")} AS sasl_username,
               {_latest("program", "'client', 'pickup'")} AS service,
               {_of("message_id", "message_id")} AS message_id,
               {_latest("sender", "'queued', 'pickup', 'expired', 'milter_reject'")} AS sender,
               {_of("size", "queued")} AS size,
               {_of("nrcpt", "queued")} AS nrcpt,
               bool_or(dsn LIKE '5%%') FILTER (WHERE kind = 'milter_reject') AS rejected,
               {_of("dsn", "milter_reject")} AS reject_code,
               {_of("reject_class", "milter_reject")} AS reject_class,
               {_latest("reply", "'milter_reject', 'milter_discard'")} AS reject_reason,
               {_of("helo", "milter_reject")} AS helo,
               {_of("related_queue_id", "bounce_notification")} AS ndn_queue_id,
               {_latest("kind = 'hold'", "'hold', 'unhold'")} AS held
        FROM newest GROUP BY queue_id
    )
    SELECT s.*, a.client_host, a.client_ip, a.sasl_method, a.sasl_username, a.service, a.message_id, a.sender,
           a.size, a.nrcpt, coalesce(a.rejected, false) AS rejected, a.reject_code, a.reject_class, a.reject_reason,
           a.helo, a.ndn_queue_id, a.held, m.id IS NOT NULL AS stored,
           coalesce(m.id, nextval('messages_id_seq')) AS id
    FROM span s LEFT JOIN attrs a USING (queue_id)
    -- LIMIT keeps this a lookup in the unique index per queue id (joined, the plan scans every message)
    LEFT JOIN LATERAL (SELECT id FROM messages WHERE correlation_key = mg_queue_key(s.queue_id) LIMIT 1) m ON true
"""

# Stored messages take the batch's attributes, keeping their own where the batch has none.
_KEPT_UNLESS_NEW = (
    "client_host",
    "client_ip",
    "sasl_method",
    "sasl_username",
    "service",
    "message_id",
    "sender",
    "size",
    "nrcpt",
    "reject_code",
    "reject_class",
    "reject_reason",
    "helo",
    "ndn_queue_id",
    "held",
)
_QUEUE_UPDATE = f"""
    WITH up AS (
        UPDATE messages m SET
            {", ".join(f"{column} = coalesce(a.{column}, m.{column})" for column in _KEPT_UNLESS_NEW)},
            first_seen = LEAST(m.first_seen, a.first_seen),
            last_seen = GREATEST(m.last_seen, a.last_seen),
            removed_at = GREATEST(a.removed_at, m.removed_at),
            deleted = m.deleted OR a.deleted,
            expired = m.expired OR a.expired,
            rejected = m.rejected OR a.rejected,
            is_spam = m.is_spam OR a.spam_reject
        FROM agg a WHERE a.stored AND m.id = a.id AND m.id = ANY(ARRAY(SELECT id FROM agg WHERE stored))
        RETURNING m.id
    )
    INSERT INTO touched SELECT id FROM up ON CONFLICT DO NOTHING
"""

# Messages seen first in this batch wait in `fresh` and are written once, complete, by recompute():
# inserting them here and updating them there would write every index entry of each twice.
_QUEUE_FRESH = """
    WITH f AS (
        INSERT INTO fresh (id, correlation_key, queue_id, first_seen, last_seen, client_host, client_ip, sasl_method,
                           sasl_username, service, message_id, sender, size, nrcpt, removed_at, deleted, expired,
                           rejected, reject_code, reject_class, reject_reason, helo, is_spam, ndn_queue_id, held)
        SELECT id, mg_queue_key(queue_id), queue_id, first_seen, last_seen, client_host, client_ip, sasl_method,
               sasl_username, service, message_id, sender, size, nrcpt, removed_at, deleted, expired, rejected,
               reject_code, reject_class, reject_reason, helo, spam_reject, ndn_queue_id, coalesce(held, false)
        FROM agg WHERE NOT stored
        RETURNING id
    )
    INSERT INTO touched SELECT id FROM f
"""

_RECIPIENT_UPSERT = """
    INSERT INTO message_recipients AS r
        (message_pk, recipient, orig_to, status, dsn, relay, delay, delays, reply, last_at, attempts)
    SELECT m.id, d.recipient, d.orig_to, d.status, d.dsn, d.relay, d.delay, d.delays, d.reply, d.logged_at, d.n
    FROM ({source}) d
    JOIN agg m ON m.queue_id = d.queue_id
    ON CONFLICT (message_pk, recipient) DO UPDATE SET
        orig_to = coalesce(EXCLUDED.orig_to, r.orig_to),
        status = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.status ELSE r.status END,
        dsn    = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.dsn ELSE r.dsn END,
        relay  = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.relay ELSE r.relay END,
        delay  = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.delay ELSE r.delay END,
        delays = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.delays ELSE r.delays END,
        reply  = CASE WHEN EXCLUDED.last_at >= r.last_at THEN EXCLUDED.reply ELSE r.reply END,
        last_at = GREATEST(EXCLUDED.last_at, r.last_at),
        attempts = r.attempts + EXCLUDED.attempts
"""

_DELIVERIES = """
    SELECT DISTINCT ON (queue_id, recipient) queue_id, recipient, orig_to, status, dsn, relay, delay, delays,
           reply, logged_at, count(*) OVER (PARTITION BY queue_id, recipient) AS n
    FROM batch WHERE kind = 'delivery' AND recipient IS NOT NULL
    ORDER BY queue_id, recipient, logged_at DESC, id DESC
"""

# Recipients refused while the mail was being received (milter in DATA, smtpd RCPT after a queue id)
# or dropped by a DISCARD action.
_REFUSED = """
    SELECT DISTINCT ON (queue_id, recipient) queue_id, recipient, NULL::text AS orig_to,
           CASE WHEN kind = 'discard' THEN 'discarded'
                WHEN coalesce(dsn, reject_code) LIKE '4%%' THEN 'deferred' ELSE 'rejected' END AS status,
           coalesce(dsn, reject_code) AS dsn, NULL::text AS relay, NULL::float8 AS delay, NULL::text AS delays,
           reply, logged_at, 1 AS n
    FROM batch WHERE kind IN ('milter_reject', 'rcpt_reject', 'discard') AND recipient IS NOT NULL
                     AND recipient <> ''
    ORDER BY queue_id, recipient, logged_at DESC, id DESC
"""

# WITH items for counters.add(): re-derive every touched message, then count the ones that have

# Candidates: unlinked messages touched now, or near new rspamd rows. A message with a Message-ID is
# found through the message_id index, one without through (sender, time); the nearest row wins.
_LINK_RSPAMD = """
    WITH cand AS (
        SELECT m.id, m.message_id, nullif(m.sender, '') AS sender, m.first_seen, m.client_ip
        FROM messages m JOIN touched t ON t.id = m.id
        WHERE m.rspamd_row_id IS NULL AND m.queue_id IS NOT NULL
        UNION ALL
        SELECT id, message_id, nullif(sender, ''), first_seen, client_ip FROM fresh
        UNION
        SELECT m.id, m.message_id, nullif(m.sender, '') AS sender, m.first_seen, m.client_ip
        FROM messages m
        WHERE m.rspamd_row_id IS NULL AND m.queue_id IS NOT NULL AND m.first_seen BETWEEN %(lo)s AND %(hi)s
    ),
    pick AS (
        SELECT c.id, x.id AS rid, x.subject, x.score, x.action, x.is_spam
        FROM cand c
        CROSS JOIN LATERAL (
            SELECT r.id, r.subject, r.score, r.action, r.is_spam
            FROM rspamd_rows r
            WHERE r.message_id = c.message_id  -- the time test below is written so only this index is used
              AND abs(extract(epoch FROM r.logged_at - c.first_seen)) <= extract(epoch FROM %(window)s)
              AND (c.sender IS NULL OR r.sender_smtp IS NOT DISTINCT FROM c.sender)
              AND (c.client_ip IS NULL OR r.ip IS NULL OR r.ip = c.client_ip)
              AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.rspamd_row_id = r.id)
            ORDER BY abs(extract(epoch FROM r.logged_at - c.first_seen)), r.id
            LIMIT 1
        ) x
        WHERE c.message_id IS NOT NULL
        UNION ALL
        SELECT c.id, x.id AS rid, x.subject, x.score, x.action, x.is_spam
        FROM cand c
        CROSS JOIN LATERAL (
            SELECT r.id, r.subject, r.score, r.action, r.is_spam
            FROM rspamd_rows r
            WHERE r.sender_smtp = c.sender AND r.message_id IS NULL
              AND r.logged_at BETWEEN c.first_seen - %(window)s AND c.first_seen + %(window)s
              AND (c.client_ip IS NULL OR r.ip IS NULL OR r.ip = c.client_ip)
              AND EXISTS (SELECT 1 FROM message_recipients mr
                          WHERE mr.message_pk = c.id
                            AND (mr.recipient = ANY(r.rcpt_smtp) OR mr.orig_to = ANY(r.rcpt_smtp)))
              AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.rspamd_row_id = r.id)
            ORDER BY abs(extract(epoch FROM r.logged_at - c.first_seen)), r.id
            LIMIT 1
        ) x
        WHERE c.message_id IS NULL AND c.sender IS NOT NULL
    ),
    linked AS (INSERT INTO linked SELECT * FROM pick RETURNING id)
    INSERT INTO touched SELECT id FROM linked ON CONFLICT DO NOTHING
"""


_NOQUEUE = """
    WITH ins AS (
        INSERT INTO messages (correlation_key, source_line_id, first_seen, last_seen, sender, first_recipient,
                              service, client_host,
                              client_ip, helo, rejected, reject_code, reject_class, reject_reason, is_spam)
        SELECT encode(sha256(b.line_key || int4send(b.occurrence)), 'hex'), b.id, b.logged_at, b.logged_at,
               b.sender, nullif(b.recipient, ''), b.program, b.client_host, b.client_ip, b.helo, true,
               coalesce(b.dsn, b.reject_code), b.reject_class, b.reply, b.reject_class IN ('rbl', 'spam')
        FROM batch b WHERE b.kind IN ('noqueue_reject', 'postscreen_pregreet')
        ORDER BY b.id
        ON CONFLICT (correlation_key) DO NOTHING
        RETURNING id, first_recipient, reject_code, reject_reason, first_seen
    ),
    rcpt AS (
        INSERT INTO message_recipients (message_pk, recipient, status, dsn, reply, last_at)
        SELECT id, first_recipient, 'rejected', reject_code, reject_reason, first_seen FROM ins
        WHERE first_recipient IS NOT NULL
    )
    INSERT INTO touched SELECT id FROM ins ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True)
class BatchResult:
    """What one run did: the lines it read, the messages it touched, whether more lines wait."""

    lines: int
    messages: int
    more: bool


def run_batch(conn: psycopg.Connection, local_domains: Sequence[str], domain_labels: bool = False) -> BatchResult:
    """Correlate one batch of new lines; return counts. The caller owns the transaction."""
    last_postfix, last_rspamd, last_dovecot = _watermarks(conn)
    # the newest id is one step down the primary key; counting the new ids would read every one
    newest = conn.execute("SELECT coalesce(max(id), 0) FROM postfix_lines").fetchone()[0]
    upto = max(last_postfix, min(newest, last_postfix + BATCH_LINES))
    newest_rspamd, rspamd_first_at, rspamd_last_at = conn.execute(
        # OFFSET 0 keeps min/max(logged_at) from walking the time index through every older row
        "SELECT max(id), min(logged_at), max(logged_at) FROM (SELECT id, logged_at FROM rspamd_rows WHERE id > %s "
        "OFFSET 0) new_rows",
        (last_rspamd,),
    ).fetchone()
    dovecot_upto, more_deliveries = deliveries.watermark(conn, last_dovecot, BATCH_LINES)
    conn.execute("DROP TABLE IF EXISTS batch, agg")
    recompute.work_tables(conn)
    conn.execute(
        f"CREATE TEMP TABLE batch ON COMMIT DROP AS SELECT {_BATCH_COLUMNS} FROM postfix_lines "
        f"WHERE id > %s AND id <= %s AND (queue_id IS NOT NULL OR kind IN ({_UNQUEUED_KINDS}))",
        (last_postfix, upto),
    )
    lines = conn.execute("SELECT count(*) FROM batch").fetchone()[0]
    if lines:
        conn.execute("SET LOCAL default_statistics_target = 10")  # a 3,000-row sample plans the batch well
        conn.execute("ANALYZE batch")
    conn.execute(_QUEUE_AGG)  # empty without lines, and then read by the batch's counters all the same
    if lines:
        conn.execute(_QUEUE_UPDATE)
        conn.execute(_QUEUE_FRESH)
        # recipients of fresh messages are stored before recompute() stores the messages themselves
        _link_bounces(conn)
        conn.execute(_RECIPIENT_UPSERT.format(source=_DELIVERIES))
        conn.execute(_RECIPIENT_UPSERT.format(source=_REFUSED))
        conn.execute(_NOQUEUE)
    # what the mailbox did, onto the recipients just stored and those of new Dovecot lines
    deliveries.correlate(conn, last_dovecot, dovecot_upto, local_domains, domain_labels)
    if newest_rspamd is not None or lines:
        lo = (rspamd_first_at - RSPAMD_WINDOW) if rspamd_first_at else None
        hi = (rspamd_last_at + RSPAMD_WINDOW) if rspamd_last_at else None
        conn.execute(_LINK_RSPAMD, {"lo": lo, "hi": hi, "window": RSPAMD_WINDOW})
    touched = recompute.recompute(conn, local_domains, domain_labels)
    new_rspamd_to = newest_rspamd if newest_rspamd is not None else last_rspamd
    counts.count_batch(conn, local_domains, last_rspamd, new_rspamd_to, lines)
    conn.execute(
        "UPDATE correlation_state SET last_id = CASE source WHEN 'postfix' THEN %s WHEN 'rspamd' THEN %s ELSE %s END",
        (upto, new_rspamd_to, dovecot_upto),
    )
    return BatchResult(lines, touched, upto < newest or more_deliveries)


def _watermarks(conn: psycopg.Connection) -> tuple[int, int, int]:
    rows = dict(conn.execute("SELECT source, last_id FROM correlation_state FOR UPDATE").fetchall())
    return rows["postfix"], rows["rspamd"], rows["dovecot"]


def _link_bounces(conn: psycopg.Connection) -> None:
    """A non-delivery notification's own queue id points back to the message that bounced."""
    conn.execute("DROP TABLE IF EXISTS ndn")
    conn.execute(
        """CREATE TEMP TABLE ndn ON COMMIT DROP AS
           SELECT DISTINCT ON (related_queue_id) related_queue_id, queue_id, logged_at
           FROM batch WHERE kind = 'bounce_notification' AND related_queue_id IS NOT NULL
           ORDER BY related_queue_id, id DESC"""
    )
    conn.execute("UPDATE fresh f SET origin_queue_id = n.queue_id FROM ndn n WHERE f.queue_id = n.related_queue_id")
    conn.execute(
        """WITH up AS (
               INSERT INTO messages AS m (correlation_key, queue_id, first_seen, last_seen, origin_queue_id)
               SELECT mg_queue_key(related_queue_id), related_queue_id, logged_at, logged_at, queue_id
               FROM ndn WHERE related_queue_id NOT IN (SELECT queue_id FROM fresh)
               ORDER BY related_queue_id
               ON CONFLICT (correlation_key) DO UPDATE SET origin_queue_id = EXCLUDED.origin_queue_id
               RETURNING m.id)
           INSERT INTO touched SELECT id FROM up ON CONFLICT DO NOTHING"""
    )
