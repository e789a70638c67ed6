-- Postfix lines by queue id are only ever asked for one queue id (or a set of them) at a time, and
-- sorted afterwards: a few lines each. Without logged_at in the key, a queue id's lines share one
-- deduplicated index entry: the index is less than half the size (9.8 instead of 22 MB per million
-- lines), so the random inserts each loaded line makes stay in cache on a large store.
DROP INDEX postfix_lines_queue;
CREATE INDEX postfix_lines_queue ON postfix_lines (queue_id) WHERE queue_id IS NOT NULL;
