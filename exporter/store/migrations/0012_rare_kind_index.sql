-- Postfix lines by kind are only ever asked for the rare kinds (rejects for the logs' status=rejected
-- filter, SASL failures for the auth-failure panel); deliveries go through postfix_lines_status. An
-- index over every line's kind cost each loaded line an entry nothing read.
DROP INDEX postfix_lines_kind_time;
CREATE INDEX postfix_lines_rare_kind ON postfix_lines (kind, logged_at)
    WHERE kind IN ('noqueue_reject', 'milter_reject', 'rcpt_reject', 'sasl_failure');
