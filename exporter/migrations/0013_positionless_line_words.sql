-- Postfix line search words without positions (exporter/parsers/words.py): PostgreSQL parses and
-- stores half as much per loaded line. The index finds lines holding every word of a term (the last
-- as a prefix); the line itself is then checked for the words adjacent and in order. Rows stored
-- with positions stay as they are: they answer the same queries.

CREATE OR REPLACE FUNCTION mg_line_words(message text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT coalesce(array_to_tsvector(array_agg(DISTINCT w[1])), '')
        FROM regexp_matches(lower(regexp_replace(message, '[^\x01-\x7f]', '?', 'g')), '[a-z0-9]{1,200}', 'g')
             WITH ORDINALITY AS t(w, n)
        WHERE n <= 16383
    );

-- A search term as a query on those words: all of them, the last one as a prefix.
CREATE OR REPLACE FUNCTION mg_words_query(term text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT CASE WHEN count(*) = 0 THEN NULL
                    ELSE (string_agg(w[1], ' & ' ORDER BY n) || ':*')::tsquery END
        FROM regexp_matches(lower(regexp_replace(term, '[^\x01-\x7f]', '?', 'g')), '[a-z0-9]{1,200}', 'g')
             WITH ORDINALITY AS t(w, n)
    );

-- For a term of several words, a regular expression that holds on a line (matched case-insensitively,
-- `~*`) when they are adjacent and in order there, the last one as a prefix; NULL for one word, which
-- the index alone decides. Every character but an ASCII letter or digit separates words, as in
-- mg_line_words: none of the others case-folds into [a-z0-9].
CREATE FUNCTION mg_words_pattern(term text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT CASE WHEN count(*) < 2 THEN NULL
                    ELSE '(?:^|[^a-z0-9])' || string_agg(w[1], '[^a-z0-9]+' ORDER BY n) END
        FROM regexp_matches(lower(regexp_replace(term, '[^\x01-\x7f]', '?', 'g')), '[a-z0-9]{1,200}', 'g')
             WITH ORDINALITY AS t(w, n)
    );
