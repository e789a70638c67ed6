-- Search of raw Postfix lines on words computed by the loader (exporter/parsers/words.py) instead of
-- an expression index on PostgreSQL's text-search parser, which cost more than the rest of a load.

-- The loader's word split, in SQL: runs of ASCII letters and digits (in pieces of at most 200),
-- lower-cased, numbered in line order.
CREATE FUNCTION mg_line_words(message text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT coalesce(string_agg(w[1] || ':' || n, ' '), '')::tsvector
        FROM regexp_matches(lower(regexp_replace(message, '[^\x01-\x7f]', '?', 'g')), '[a-z0-9]{1,200}', 'g')
             WITH ORDINALITY AS t(w, n)
        WHERE n <= 16383
    );

-- A search term as a query on those words: adjacent and in order, the last one as a prefix.
CREATE FUNCTION mg_words_query(term text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT CASE WHEN count(*) = 0 THEN NULL
                    ELSE (string_agg(w[1], ' <-> ' ORDER BY n) || ':*')::tsquery END
        FROM regexp_matches(lower(regexp_replace(term, '[^\x01-\x7f]', '?', 'g')), '[a-z0-9]{1,200}', 'g')
             WITH ORDINALITY AS t(w, n)
    );

ALTER TABLE postfix_lines ADD COLUMN words tsvector;
UPDATE postfix_lines SET words = mg_line_words(message);
ALTER TABLE postfix_lines ALTER COLUMN words SET NOT NULL;
DROP INDEX postfix_lines_search;
CREATE INDEX postfix_lines_words ON postfix_lines USING gin (words);

-- Line identity led by the line's time: the key hashes the time anyway, so the constraint means the
-- same, and new lines land at the right edge of the index instead of at random places in it (the
-- time index it replaces was the same shape).
ALTER TABLE postfix_lines DROP CONSTRAINT postfix_lines_line_key_occurrence_key,
    ADD CONSTRAINT postfix_lines_identity UNIQUE (logged_at, line_key, occurrence);
DROP INDEX postfix_lines_time;
ALTER TABLE rspamd_rows DROP CONSTRAINT rspamd_rows_line_key_occurrence_key,
    ADD CONSTRAINT rspamd_rows_identity UNIQUE (logged_at, line_key, occurrence);
DROP INDEX rspamd_rows_time;
