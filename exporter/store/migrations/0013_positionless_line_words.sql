-- Postfix line search words without positions (exporter/parsers/words.py): PostgreSQL parses and
-- stores half as much per loaded line. The index finds lines holding every word of a term (the last
-- as a prefix); the line itself is then checked for the words adjacent and in order. Rows stored
-- with positions stay as they are: they answer the same queries.

-- The word split, in one place: runs of ASCII letters and digits (in pieces of at most 200),
-- lower-cased, every other character a separator, numbered in text order.
CREATE FUNCTION mg_words(value text) RETURNS TABLE (word text, n bigint)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT w[1], n
        FROM regexp_matches(lower(regexp_replace(value, '[^\x01-\x7f]', '?', 'g')), '[a-z0-9]{1,200}', 'g')
             WITH ORDINALITY AS t(w, n);
    END;

CREATE OR REPLACE FUNCTION mg_line_words(message text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT coalesce(array_to_tsvector(array_agg(DISTINCT word)), '') FROM mg_words(message) WHERE n <= 16383
    );

-- A search term as a query on those words: all of them, the last one as a prefix.
CREATE OR REPLACE FUNCTION mg_words_query(term text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT CASE WHEN count(*) = 0 THEN NULL ELSE (string_agg(word, ' & ' ORDER BY n) || ':*')::tsquery END
        FROM mg_words(term)
    );

-- For a term of several words, a regular expression that holds on a line (matched case-insensitively,
-- `~*`) when they are adjacent and in order there, the last one as a prefix; NULL for one word, which
-- the index alone decides. Every character but an ASCII letter or digit separates words, as in
-- mg_words: none of the others case-folds into [a-z0-9].
CREATE FUNCTION mg_words_pattern(term text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT CASE WHEN count(*) < 2 THEN NULL ELSE '(?:^|[^a-z0-9])' || string_agg(word, '[^a-z0-9]+' ORDER BY n) END
        FROM mg_words(term)
    );
