-- Every new row version of a message writes an entry into each of its indexes, and correlation
-- writes a version per message and batch: indexes nothing reads are pure cost.
-- Queue-id lookups go through the unique correlation key (mg_queue_key(queue_id)).
DROP INDEX messages_queue_id;
-- Message-IDs are searched through search_vector; rspamd rows are linked through their own index.
DROP INDEX messages_message_id;
-- Correlation stores the recipients of a message seen first in a batch before the message itself,
-- which it then writes once, complete (exporter/store/correlation.py, `fresh`): the reference is
-- checked at commit in that transaction, and immediately everywhere else.
ALTER TABLE message_recipients ALTER CONSTRAINT message_recipients_message_pk_fkey DEFERRABLE INITIALLY IMMEDIATE;
