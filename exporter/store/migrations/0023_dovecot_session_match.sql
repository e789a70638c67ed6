-- Dovecot delivery lines without a Message-ID (`msgid=unspecified`) are matched to their recipient by the
-- LMTP session id, which Dovecot writes both in the line's prefix and in its `250 2.0.0 <rcpt> SESSION Saved`
-- reply that Postfix logs (exporter/store/correlation/deliveries.py).
-- new lines -> their recipient: the session token of Dovecot's replies (the expression must stay the
-- same as deliveries.REPLY_SESSION for the planner to use it; only replies that carry one are indexed)
CREATE INDEX message_recipients_lmtp_session
    ON message_recipients ((substring(reply, '^250 2\.0\.0 <[^>]*> ([^ ]+) Saved$')))
    WHERE substring(reply, '^250 2\.0\.0 <[^>]*> ([^ ]+) Saved$') IS NOT NULL;
-- recipients -> their lines
CREATE INDEX dovecot_deliveries_session ON dovecot_deliveries (session_id)
    WHERE message_id IS NULL AND session_id IS NOT NULL;
-- The planner has no statistics for a partial index's expression: these tell it a session is one reply.
CREATE STATISTICS message_recipients_lmtp_session_stats
    ON (substring(reply, '^250 2\.0\.0 <[^>]*> ([^ ]+) Saved$')) FROM message_recipients;
