"""Set-based correlation of new log lines into messages with per-recipient status.

One run reads the Postfix lines and rspamd rows added since the last run (watermarks in
`correlation_state`) and updates only the messages they touch, in one transaction. Message
status precedence (documented in README "Message status"):

    rejected (refused at our door, nothing delivered) > queued (no recipient line yet)
    > deferred > bounced > expired > rejected (some recipients) > delivered > discarded

`expired` comes from Postfix (`status=expired`) or from `expire()` after a horizon without any
line; neither overrides a reject or a spam verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg

from exporter.parsers.postfix import EVENT_FIELDS
from exporter.store import counters

BATCH_LINES = 200_000
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
# just reached a final status (once: `counted` stays true), with their recipients.
_RECOMPUTE = """
    ids AS (SELECT id FROM touched),
    r AS (
        SELECT message_pk,
               count(*) AS n,
               count(*) FILTER (WHERE status = 'deferred') AS deferred,
               count(*) FILTER (WHERE status = 'delivered') AS delivered,
               count(*) FILTER (WHERE status = 'bounced') AS bounced,
               count(*) FILTER (WHERE status = 'expired') AS expired,
               count(*) FILTER (WHERE status = 'rejected') AS rejected,
               count(*) FILTER (WHERE status = 'discarded') AS discarded,
               (array_agg(recipient ORDER BY coalesce(orig_to, recipient), recipient))[1] AS first_recipient,
               bool_and(lower(split_part(recipient, '@', 2)) = ANY(%(local)s::text[])) AS all_local,
               string_agg(recipient || ' ' || coalesce(orig_to, ''), ' ') AS rcpt_text
        FROM message_recipients WHERE message_pk = ANY(ARRAY(SELECT id FROM ids))  -- always the index
        GROUP BY message_pk
    ),
    c0 AS (
        SELECT m.id, m.counted AS was_counted, m.first_seen, m.sender, m.reject_class, m.sasl_username,
               m.queue_id, m.message_id, m.spam_score, m.rspamd_action, m.rspamd_row_id,
               m.rolled_bucket AS old_bucket, m.rolled_direction AS old_direction, m.rolled_status AS old_status,
               m.rolled_spam AS old_spam, m.rolled_domains AS old_domains, m.rolled_facets AS old_facets,
               coalesce(r.first_recipient, m.first_recipient) AS first_recipient,
               coalesce(r.n, 0) AS n, r.rcpt_text,
               CASE
                   WHEN m.rejected AND coalesce(r.delivered, 0) = 0 THEN 'rejected'
                   WHEN coalesce(r.n, 0) = 0 THEN
                       CASE WHEN m.deleted THEN 'deleted' WHEN m.expired THEN 'expired'
                            WHEN m.removed_at IS NOT NULL THEN 'unknown' ELSE 'queued' END
                   WHEN r.deferred > 0 THEN
                       CASE WHEN m.deleted THEN 'deleted' WHEN m.expired THEN 'expired' ELSE 'deferred' END
                   WHEN r.bounced > 0 THEN 'bounced'
                   WHEN r.expired > 0 THEN 'expired'
                   WHEN r.rejected > 0 AND r.delivered = 0 THEN 'rejected'
                   WHEN r.delivered > 0 THEN 'delivered'
                   WHEN r.discarded > 0 THEN 'discarded'
                   ELSE 'unknown'
               END AS final_status,
               CASE
                   WHEN lower(split_part(m.sender, '@', 2)) = ANY(%(local)s::text[]) AND coalesce(r.all_local, false)
                       THEN 'internal'
                   WHEN m.ndn_origin AND coalesce(r.all_local, false) THEN 'internal'
                   WHEN m.sasl_username IS NOT NULL OR m.ndn_origin
                        OR m.service ~ '(submission|smtps|sogo)/' THEN 'outbound'
                   ELSE 'inbound'
               END AS direction,
               l.rid, CASE WHEN l.rid IS NULL THEN m.subject ELSE l.subject END AS subject, l.score, l.action,
               m.is_spam OR coalesce(l.is_spam, false) AS is_spam
        FROM (SELECT m.*, m.origin_queue_id IS NOT NULL AS ndn_origin FROM messages m
              WHERE m.id IN (SELECT id FROM ids)
              UNION ALL
              SELECT f.*, f.origin_queue_id IS NOT NULL FROM fresh f) m
        LEFT JOIN r ON r.message_pk = m.id
        LEFT JOIN linked l ON l.id = m.id
    ),
    -- every derived column of a touched message, for the UPDATE of stored ones and the INSERT of fresh ones
    c AS (
        SELECT id, was_counted, old_bucket, old_direction, old_status, old_spam, old_domains, old_facets,
               n AS recipient_count, first_recipient, final_status, direction,
               final_status NOT IN ('queued', 'deferred') OR reject_class IS NOT DISTINCT FROM 'greylist'
                   AS is_complete,
               was_counted OR final_status NOT IN ('queued', 'deferred')
                   OR reject_class IS NOT DISTINCT FROM 'greylist' AS counted,
               coalesce(rid, rspamd_row_id) AS rspamd_row_id, subject,
               CASE WHEN rid IS NULL THEN spam_score ELSE score END AS spam_score,
               CASE WHEN rid IS NULL THEN rspamd_action ELSE action END AS rspamd_action,
               is_spam,
               lower(concat_ws(' ', queue_id, message_id, sender, subject, sasl_username,
                               coalesce(rcpt_text, first_recipient))) AS search_text,
               date_trunc('hour', first_seen) AS rolled_bucket,
               mg_rollup_domains(sender, first_recipient, %(local)s::text[]) AS rolled_domains,
               mg_message_facets(sender, first_recipient, sasl_username, reject_class, final_status) AS rolled_facets
        FROM c0
    ),
    upd AS (
        UPDATE messages m SET
            recipient_count = c.recipient_count, first_recipient = c.first_recipient, final_status = c.final_status,
            direction = c.direction, is_complete = c.is_complete, counted = c.counted,
            rspamd_row_id = c.rspamd_row_id, subject = c.subject, spam_score = c.spam_score,
            rspamd_action = c.rspamd_action, is_spam = c.is_spam, search_text = c.search_text,
            rolled_bucket = c.rolled_bucket, rolled_direction = c.direction, rolled_status = c.final_status,
            rolled_spam = c.is_spam, rolled_domains = c.rolled_domains, rolled_facets = c.rolled_facets,
            updated_at = now()
        FROM c WHERE m.id = c.id AND m.id = ANY(ARRAY(SELECT id FROM ids))  -- the primary key, never a scan
        RETURNING m.id, m.direction, m.final_status, m.counted AND NOT c.was_counted AS newly_complete,
                  lower(split_part(CASE m.direction WHEN 'inbound' THEN m.first_recipient ELSE m.sender END, '@', 2))
                      AS domain,
                  c.old_bucket, c.old_direction, c.old_status, c.old_spam, c.old_domains, c.old_facets,
                  m.rolled_bucket, m.rolled_direction, m.rolled_status, m.rolled_spam, m.rolled_domains,
                  m.rolled_facets
    ),
    ins AS (
        INSERT INTO messages (id, correlation_key, queue_id, message_id, sender, first_seen, last_seen, service,
                              client_host, client_ip, sasl_method, sasl_username, size, nrcpt, removed_at, expired,
                              held, deleted, rejected, reject_code, reject_class, reject_reason, helo, ndn_queue_id,
                              origin_queue_id, quarantined, recipient_count, first_recipient, final_status,
                              direction, is_complete, counted, rspamd_row_id, subject, spam_score, rspamd_action,
                              is_spam, search_text, rolled_bucket, rolled_direction, rolled_status, rolled_spam,
                              rolled_domains, rolled_facets)
        OVERRIDING SYSTEM VALUE
        SELECT f.id, f.correlation_key, f.queue_id, f.message_id, f.sender, f.first_seen, f.last_seen, f.service,
               f.client_host, f.client_ip, f.sasl_method, f.sasl_username, f.size, f.nrcpt, f.removed_at, f.expired,
               f.held, f.deleted, f.rejected, f.reject_code, f.reject_class, f.reject_reason, f.helo, f.ndn_queue_id,
               f.origin_queue_id, f.quarantined, c.recipient_count, c.first_recipient, c.final_status,
               c.direction, c.is_complete, c.counted, c.rspamd_row_id, c.subject, c.spam_score, c.rspamd_action,
               c.is_spam, c.search_text, c.rolled_bucket, c.direction, c.final_status, c.is_spam,
               c.rolled_domains, c.rolled_facets
        FROM fresh f JOIN c ON c.id = f.id
        ORDER BY f.id
        RETURNING id, direction, final_status, counted AS newly_complete,
                  lower(split_part(CASE direction WHEN 'inbound' THEN first_recipient ELSE sender END, '@', 2))
                      AS domain,
                  NULL::timestamptz AS old_bucket, NULL::text AS old_direction, NULL::text AS old_status,
                  NULL::boolean AS old_spam, NULL::text[] AS old_domains, NULL::text[] AS old_facets,
                  rolled_bucket, rolled_direction, rolled_status, rolled_spam, rolled_domains, rolled_facets
    ),
    changed AS (SELECT * FROM upd UNION ALL SELECT * FROM ins),
    -- the same move for the top-list counts: per-day deltas as running totals per month
    faceted AS (
        INSERT INTO message_facets AS f (facet, month, name, first_day, messages, delivered, failed, spam)
        SELECT split_part(entry, chr(31), 1), month, split_part(entry, chr(31), 2), min(day),
               mg_prefix(array_agg(day), array_agg(messages)), mg_prefix(array_agg(day), array_agg(delivered)),
               mg_prefix(array_agg(day), array_agg(failed)), mg_prefix(array_agg(day), array_agg(spam))
        FROM (
            SELECT date_trunc('month', bucket), extract(day FROM bucket)::int, entry, sum(n),
                   sum(n * (status = 'delivered')::int), sum(n * (status IN ('bounced', 'expired', 'rejected'))::int),
                   sum(n * spam::int)
            FROM (
                SELECT old_bucket, e, old_status, old_spam, -1
                FROM changed, unnest(old_facets) e WHERE old_bucket IS NOT NULL
                UNION ALL
                SELECT rolled_bucket, e, rolled_status, rolled_spam, 1
                FROM changed, unnest(rolled_facets) e
            ) AS x (bucket, entry, status, spam, n)
            GROUP BY 1, 2, 3
        ) AS daily (month, day, entry, messages, delivered, failed, spam)
        GROUP BY entry, month
        ON CONFLICT (facet, month, name) DO UPDATE SET
            first_day = least(f.first_day, EXCLUDED.first_day),
            messages = mg_prefix_add(f.messages, f.first_day, EXCLUDED.messages, EXCLUDED.first_day),
            delivered = mg_prefix_add(f.delivered, f.first_day, EXCLUDED.delivered, EXCLUDED.first_day),
            failed = mg_prefix_add(f.failed, f.first_day, EXCLUDED.failed, EXCLUDED.first_day),
            spam = mg_prefix_add(f.spam, f.first_day, EXCLUDED.spam, EXCLUDED.first_day)
    ),
    -- move each message's hourly count from what it last added to what it is now
    rolled AS (
        INSERT INTO message_rollup AS r (bucket, domain, direction, status, spam, messages)
        SELECT bucket, domain, direction, status, spam, sum(n) FROM (
            SELECT old_bucket, d, old_direction, old_status, old_spam, -1
            FROM changed, unnest(old_domains) d WHERE old_bucket IS NOT NULL
            UNION ALL
            SELECT rolled_bucket, d, rolled_direction, rolled_status, rolled_spam, 1
            FROM changed, unnest(rolled_domains) d
        ) AS x (bucket, domain, direction, status, spam, n)
        GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (bucket, domain, direction, status, spam) DO UPDATE SET messages = r.messages + EXCLUDED.messages
    ),
    labelled AS (
        SELECT id, direction, final_status,
               CASE WHEN NOT %(domain_labels)s THEN '{}'::jsonb
                    WHEN domain = ANY(%(local)s::text[]) THEN jsonb_build_object('domain', domain)
                    ELSE '{"domain": "other"}'::jsonb END AS extra
        FROM changed WHERE newly_complete
    )"""

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

_COMPLETED_ROWS = """
    SELECT 'messages', jsonb_build_object('direction', direction, 'status', final_status) || extra, count(*)
    FROM labelled GROUP BY direction, final_status, extra
    UNION ALL
    SELECT 'recipients', jsonb_build_object('direction', d.direction, 'status', r.status) || d.extra, count(*)
    FROM labelled d JOIN message_recipients r ON r.message_pk = d.id
    WHERE r.message_pk = ANY(ARRAY(SELECT id FROM labelled))  -- the index, not a scan of every recipient
    GROUP BY d.direction, r.status, d.extra
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


def run_batch(conn: psycopg.Connection, local_domains: Sequence[str], domain_labels: bool = False) -> dict[str, Any]:
    """Correlate one batch of new lines; return counts. The caller owns the transaction."""
    last_postfix, last_rspamd = _watermarks(conn)
    # the newest id is one step down the primary key; counting the new ids would read every one
    newest = conn.execute("SELECT coalesce(max(id), 0) FROM postfix_lines").fetchone()[0]
    upto = max(last_postfix, min(newest, last_postfix + BATCH_LINES))
    new_rspamd = conn.execute(
        # OFFSET 0 keeps min/max(logged_at) from walking the time index through every older row
        "SELECT max(id), min(logged_at), max(logged_at) FROM (SELECT id, logged_at FROM rspamd_rows WHERE id > %s "
        "OFFSET 0) new_rows",
        (last_rspamd,),
    ).fetchone()
    conn.execute("DROP TABLE IF EXISTS batch, agg")
    _work_tables(conn)
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
    if new_rspamd[0] is not None or lines:
        lo = (new_rspamd[1] - RSPAMD_WINDOW) if new_rspamd[1] else None
        hi = (new_rspamd[2] + RSPAMD_WINDOW) if new_rspamd[2] else None
        conn.execute(_LINK_RSPAMD, {"lo": lo, "hi": hi, "window": RSPAMD_WINDOW})
    touched = recompute(conn, local_domains, domain_labels)
    new_rspamd_to = new_rspamd[0] if new_rspamd[0] is not None else last_rspamd
    counters.add(
        conn,
        _BATCH_EVENTS,
        {
            "local": [d.lower() for d in local_domains],
            "buckets": list(counters.DELAY_BUCKETS),
            "rspamd_from": last_rspamd,
            "rspamd_to": new_rspamd_to,
            "bounds": list(DELAY_ROLLUP_BOUNDS),
        },
        ctes=_BATCH_DELIVERIES,
    )
    if lines:
        conn.execute(_REASON_ROLLUP)
    conn.execute(
        "UPDATE correlation_state SET last_id = CASE source WHEN 'postfix' THEN %s ELSE %s END",
        (upto, new_rspamd_to),
    )
    return {"lines": lines, "messages": touched, "more": upto < newest}


def _watermarks(conn: psycopg.Connection) -> tuple[int, int]:
    rows = dict(conn.execute("SELECT source, last_id FROM correlation_state FOR UPDATE").fetchall())
    return rows["postfix"], rows["rspamd"]


def _work_tables(conn: psycopg.Connection) -> None:
    """The per-transaction tables recompute() reads: `touched` (the messages to re-derive), `fresh`
    (messages seen first in this batch, not stored yet) and `linked` (rspamd rows picked for them).
    Everything about a message is written in one statement: each row version costs an entry in
    every index."""
    conn.execute("DROP TABLE IF EXISTS touched, fresh, linked")
    conn.execute("CREATE TEMP TABLE touched (id bigint PRIMARY KEY) ON COMMIT DROP")
    conn.execute("CREATE TEMP TABLE fresh (LIKE messages INCLUDING DEFAULTS) ON COMMIT DROP")
    conn.execute(
        """CREATE TEMP TABLE linked (id bigint PRIMARY KEY, rid bigint NOT NULL, subject text,
                                     score double precision, action text, is_spam boolean) ON COMMIT DROP"""
    )


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


def recompute(conn: psycopg.Connection, local_domains: Sequence[str], domain_labels: bool = False) -> int:
    """Re-derive status, direction and search text of every message in the `touched` temp table
    (with the rspamd rows in `linked`), store the ones waiting in `fresh`, and count the ones that
    have just reached a final status."""
    conn.execute(
        """UPDATE message_recipients r SET status = 'expired'
           WHERE r.status = 'deferred' AND r.message_pk = ANY(ARRAY(
                     SELECT id FROM messages WHERE expired AND id = ANY(ARRAY(SELECT id FROM touched))
                     UNION ALL SELECT id FROM fresh WHERE expired))"""
    )
    conn.execute(
        """UPDATE messages m SET quarantined = true FROM quarantine_items q
           WHERE m.correlation_key = mg_queue_key(q.queue_id) AND NOT m.quarantined
             AND m.id IN (SELECT id FROM touched)"""
    )
    conn.execute("UPDATE fresh f SET quarantined = true FROM quarantine_items q WHERE q.queue_id = f.queue_id")
    local = [d.lower() for d in local_domains]
    counters.add(conn, _COMPLETED_ROWS, {"local": local, "domain_labels": domain_labels}, ctes=_RECOMPUTE)
    return conn.execute("SELECT count(*) FROM touched").fetchone()[0]


def expire(
    conn: psycopg.Connection, horizon: timedelta, local_domains: Sequence[str], domain_labels: bool = False
) -> int:
    """Expire unfinished messages with no line for `horizon` (measured against the newest line)."""
    _work_tables(conn)
    conn.execute(
        """WITH up AS (
               UPDATE messages SET expired = true
               WHERE NOT is_complete AND NOT rejected AND NOT expired
                 AND last_seen < (SELECT max(logged_at) FROM postfix_lines) - %s
               RETURNING id)
           INSERT INTO touched SELECT id FROM up""",
        (horizon,),
    )
    return recompute(conn, local_domains, domain_labels)


def refresh_incomplete(conn: psycopg.Connection, local_domains: Sequence[str], domain_labels: bool = False) -> int:
    """Consistency sweep: re-derive every unfinished message (e.g. after the domain list changed),
    and count complete messages not counted yet (those stored before counting existed)."""
    _work_tables(conn)
    conn.execute("INSERT INTO touched SELECT id FROM messages WHERE NOT is_complete")
    conn.execute("INSERT INTO touched SELECT id FROM messages WHERE is_complete AND NOT counted")
    return recompute(conn, local_domains, domain_labels)
