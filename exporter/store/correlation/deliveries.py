"""Dovecot deliveries onto message recipients, set-based, whichever side arrives first.

A delivery line belongs to the newest message with its Message-ID that has its recipient (address compared
case-insensitively, a Postfix sub-address user+tag@ as its mailbox user@) and was first seen before the line
(CLOCK_SLACK allowed): the same Message-ID sent again later is another message. Each run re-derives every
(Message-ID, recipient) pair that a new delivery line or a recipient touched by the run's Postfix lines names,
from all of the pair's stored lines, so the order in which Postfix and Dovecot lines arrive does not matter,
nor their age.

A line without a Message-ID (Dovecot's `msgid=unspecified`) belongs to the recipient whose Postfix reply
`250 2.0.0 <rcpt> SESSION Saved` names the line's LMTP session (Dovecot gives each recipient of a transaction
its own: the transaction id, then `id:2`, `id:3`...), same recipient as above. Dovecot reads the same header
as Postfix, so a recipient's lines are all of one kind; both kinds then go through the same derivation.

A recipient shows the line that says most about where the mail went: stored > redirected > rejected >
discarded > failed, the newest of a kind (a stored line after a failed one, a fileinto after a discard,
a retry that succeeded). Its status follows Postfix except where the mailbox contradicts a `delivered`:
a Sieve discard makes it `discarded`, a Sieve reject `rejected`. Postfix's final word about a failure
(deferred, bounced) stands; Dovecot's line adds the reason and the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import psycopg

from exporter.parsers import dovecot
from exporter.store import counters

CLOCK_SLACK = timedelta(minutes=5)
# The outcomes that replace a Postfix `delivered`, named like the recipient status they become.
STATUS_OUTCOMES = ("discarded", "rejected")

_REMEMBER_MESSAGE_IDS = """
    INSERT INTO message_ids (message_id, message_pk, first_seen)
    SELECT message_id, id, first_seen FROM agg WHERE message_id IS NOT NULL
    ON CONFLICT DO NOTHING
"""

# Dovecot names the mailbox (user@domain) where Postfix keeps a sub-address (user+tag@domain).
_BARE = r"lower(regexp_replace(r.recipient, '\+[^@]*@', '@'))"
_MATCHES = f"k.rcpt IN (lower(r.recipient), {_BARE})"
# The pairs to re-derive: those of the new delivery lines, and those of the recipients of the messages
# this run touched.
_KEYS = f"""
    CREATE TEMP TABLE delivery_keys ON COMMIT DROP AS
    SELECT message_id, lower(recipient) AS rcpt FROM dovecot_deliveries
    WHERE id > %(from)s AND id <= %(to)s AND message_id IS NOT NULL
    UNION
    SELECT i.message_id, rcpt FROM message_ids i
    JOIN message_recipients r ON r.message_pk = i.message_pk
    CROSS JOIN LATERAL (VALUES (lower(r.recipient)), ({_BARE})) AS k (rcpt)
    WHERE i.message_pk = ANY(ARRAY(SELECT id FROM touched))
"""
# The messages of those pairs that have a delivery line (a pair without one has nothing to re-derive:
# a line moves between messages only within its pair).
_KEY_MESSAGES = """
    CREATE TEMP TABLE delivery_messages ON COMMIT DROP AS
    SELECT k.message_id, k.rcpt, i.message_pk, i.first_seen
    FROM delivery_keys k JOIN message_ids i ON i.message_id = k.message_id
    WHERE EXISTS (SELECT 1 FROM dovecot_deliveries d WHERE d.message_id = k.message_id AND lower(d.recipient) = k.rcpt)
"""

# The LMTP session of Dovecot's reply to Postfix: the same expression as the index of migration 0023.
REPLY_SESSION = r"substring(r.reply, '^250 2\.0\.0 <[^>]*> ([^ ]+) Saved$')"
_LINE_MATCHES = f"d.session_id = {REPLY_SESSION} AND lower(d.recipient) IN (lower(r.recipient), {_BARE})"
# Lines without a Message-ID and their recipient: the new lines', and those of the recipients of the
# messages this run touched or re-derives by Message-ID.
_SESSIONS = f"""
    CREATE TEMP TABLE delivery_sessions ON COMMIT DROP AS
    SELECT DISTINCT ON (id) * FROM (
        SELECT d.id, r.message_pk, r.recipient FROM dovecot_deliveries d
        -- one probe of migration 0023's index per line (OFFSET 0 keeps the planner from scanning every
        -- reply instead: it costs the regular expression as nearly free)
        CROSS JOIN LATERAL (
            SELECT r.message_pk, r.recipient FROM message_recipients r
            WHERE {_LINE_MATCHES} AND {REPLY_SESSION} IS NOT NULL OFFSET 0
        ) r
        WHERE d.id > %(from)s AND d.id <= %(to)s AND d.message_id IS NULL AND d.session_id IS NOT NULL
        UNION ALL
        SELECT d.id, r.message_pk, r.recipient FROM message_recipients r
        JOIN dovecot_deliveries d ON d.message_id IS NULL AND {_LINE_MATCHES}
        WHERE r.message_pk = ANY(ARRAY(SELECT id FROM touched UNION SELECT message_pk FROM delivery_messages))
    ) s ORDER BY id, message_pk DESC
"""

_RANK = "array_position(%(outcomes)s::text[], d.outcome)"  # dovecot.OUTCOMES, most telling first

# WITH items for counters.add(): the recipients of the pairs with what their lines now say, the update
# of the ones that changed, and the messages whose recipients changed status queued for recompute().
_APPLY = f"""
    targets AS (
        SELECT r.message_pk, r.recipient, r.status AS old_status,
               CASE WHEN r.status = ANY(%(status_outcomes)s::text[]) AND r.delivery_outcome = r.status THEN 'delivered'
                    ELSE r.status END AS postfix_status,
               r.delivery_outcome, r.delivery_mailbox, r.delivery_detail, r.delivery_at
        FROM message_recipients r
        WHERE (r.message_pk, r.recipient) IN (
            SELECT r.message_pk, r.recipient FROM delivery_messages k
            JOIN message_recipients r ON r.message_pk = k.message_pk AND {_MATCHES}
            UNION ALL SELECT message_pk, recipient FROM delivery_sessions)
    ),
    -- each line's message: the newest one with its Message-ID and recipient first seen before the line
    by_message_id AS (
        SELECT DISTINCT ON (d.id) d.id, k.message_pk, r.recipient, d.outcome, d.mailbox, d.detail, d.at
        FROM delivery_messages k
        JOIN dovecot_deliveries d ON d.message_id = k.message_id AND lower(d.recipient) = k.rcpt
        JOIN message_recipients r ON r.message_pk = k.message_pk AND {_MATCHES}
        WHERE k.first_seen <= d.at + %(slack)s
        ORDER BY d.id, k.first_seen DESC, k.message_pk DESC, lower(r.recipient) <> k.rcpt
    ),
    matched AS (
        SELECT * FROM by_message_id
        UNION ALL
        SELECT d.id, s.message_pk, s.recipient, d.outcome, d.mailbox, d.detail, d.at
        FROM delivery_sessions s JOIN dovecot_deliveries d USING (id)
    ),
    best AS (
        SELECT DISTINCT ON (message_pk, recipient) * FROM matched d
        ORDER BY message_pk, recipient, {_RANK}, at DESC, id DESC
    ),
    wanted AS (
        SELECT t.*, b.outcome, b.mailbox, b.detail, b.at,
               CASE WHEN t.postfix_status = 'delivered' AND b.outcome = ANY(%(status_outcomes)s::text[]) THEN b.outcome
                    ELSE t.postfix_status END AS status
        FROM targets t LEFT JOIN best b USING (message_pk, recipient)
    ),
    changed AS (
        UPDATE message_recipients r SET status = w.status, delivery_outcome = w.outcome,
               delivery_mailbox = w.mailbox, delivery_detail = w.detail, delivery_at = w.at
        FROM wanted w
        WHERE r.message_pk = w.message_pk AND r.recipient = w.recipient
          AND (w.old_status, w.delivery_outcome, w.delivery_mailbox, w.delivery_detail, w.delivery_at)
              IS DISTINCT FROM (w.status, w.outcome, w.mailbox, w.detail, w.at)
        RETURNING r.message_pk, w.old_status, r.status
    ),
    -- only a status change is news to the message (its final status, counters, rollups)
    queued AS (INSERT INTO touched SELECT DISTINCT message_pk FROM changed WHERE status IS DISTINCT FROM old_status
               ON CONFLICT DO NOTHING)"""

# A recipient of a message counted already (it had reached a final status) whose status the mailbox
# changed is counted again under its new status: counters only grow.
_RECOUNTED = """
    SELECT 'recipients',
           jsonb_build_object('direction', m.direction, 'status', c.status)
           || CASE WHEN NOT %(domain_labels)s THEN '{}'::jsonb
                   WHEN d.domain = ANY(%(local)s::text[]) THEN jsonb_build_object('domain', d.domain)
                   ELSE '{"domain": "other"}'::jsonb END,
           count(*)
    FROM changed c JOIN messages m ON m.id = c.message_pk
    CROSS JOIN LATERAL (SELECT lower(split_part(CASE m.direction WHEN 'inbound' THEN m.first_recipient
                                                ELSE m.sender END, '@', 2)) AS domain) d
    WHERE m.counted AND c.status IS DISTINCT FROM c.old_status
    GROUP BY m.direction, c.status, d.domain
"""


def watermark(conn: psycopg.Connection, last: int, cap: int) -> tuple[int, bool]:
    """The id up to which this run reads delivery lines (at most `cap` past `last`), and whether more wait."""
    newest = conn.execute("SELECT coalesce(max(id), 0) FROM dovecot_deliveries").fetchone()[0]
    upto = max(last, min(newest, last + cap))
    return upto, upto < newest


def correlate(
    conn: psycopg.Connection, last: int, upto: int, local_domains: Sequence[str], domain_labels: bool = False
) -> None:
    """Apply the delivery lines with ids in (last, upto] and re-apply those of the recipients of the
    messages in `touched` (a batch's temp table, with `agg` its queue ids); queue the messages whose
    recipients changed status into `touched` for recompute()."""
    conn.execute(_REMEMBER_MESSAGE_IDS)
    conn.execute("DROP TABLE IF EXISTS delivery_keys, delivery_messages, delivery_sessions")
    conn.execute(_KEYS, {"from": last, "to": upto})
    conn.execute(_KEY_MESSAGES)
    conn.execute(_SESSIONS, {"from": last, "to": upto})
    if not conn.execute(
        "SELECT EXISTS (SELECT 1 FROM delivery_messages) OR EXISTS (SELECT 1 FROM delivery_sessions)"
    ).fetchone()[0]:
        return  # no line names a known message (yet)
    conn.execute("ANALYZE delivery_keys, delivery_messages, delivery_sessions")
    params = {
        "status_outcomes": list(STATUS_OUTCOMES),
        "outcomes": list(dovecot.OUTCOMES),
        "slack": CLOCK_SLACK,
        "local": [d.lower() for d in local_domains],
        "domain_labels": domain_labels,
    }
    counters.add(conn, _RECOUNTED, params, ctes=_APPLY)
