-- rspamd rows are searched on words the loader computes (exporter/parsers/words.py, as for Postfix
-- lines) instead of an expression index on PostgreSQL's text-search parser and a regexp, which cost
-- about as much as the rest of loading a row. search_words holds them as a tsvector literal; the
-- index casts it, a cheap parse. A search checks adjacency and order on the text (mg_words_pattern).
ALTER TABLE rspamd_rows ADD COLUMN search_words text NOT NULL DEFAULT '';
UPDATE rspamd_rows
SET search_words = mg_line_words(concat_ws(' ', subject, sender_smtp, message_id))::text;
DROP INDEX rspamd_rows_search;
CREATE INDEX rspamd_rows_words ON rspamd_rows USING gin ((search_words::tsvector));
