"""Re-deriving messages: status, direction, search text, the rspamd row's verdict, the rollups and
the counters of the ones that have just completed, for every message a run touched (a batch, the
expiry sweep, the consistency sweep) in one statement: each row version costs an entry in every index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import psycopg

from exporter.store import counters

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


_COMPLETED_ROWS = """
    SELECT 'messages', jsonb_build_object('direction', direction, 'status', final_status) || extra, count(*)
    FROM labelled GROUP BY direction, final_status, extra
    UNION ALL
    SELECT 'recipients', jsonb_build_object('direction', d.direction, 'status', r.status) || d.extra, count(*)
    FROM labelled d JOIN message_recipients r ON r.message_pk = d.id
    WHERE r.message_pk = ANY(ARRAY(SELECT id FROM labelled))  -- the index, not a scan of every recipient
    GROUP BY d.direction, r.status, d.extra
"""


def work_tables(conn: psycopg.Connection) -> None:
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
    work_tables(conn)
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
    work_tables(conn)
    conn.execute("INSERT INTO touched SELECT id FROM messages WHERE NOT is_complete")
    conn.execute("INSERT INTO touched SELECT id FROM messages WHERE is_complete AND NOT counted")
    return recompute(conn, local_domains, domain_labels)
