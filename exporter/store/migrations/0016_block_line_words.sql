-- Postfix line search words by blocks of consecutive lines (exporter/parsers/words.py): a busy
-- server's lines share most of their words, so a block of 512 lines holds a tenth of the index
-- entries the lines held one by one, and loading a line no longer parses and indexes its own
-- tsvector. A search finds the blocks holding every word of its term (the last as a prefix) through
-- the index, then checks their lines' text with mg_words_pattern.
CREATE TABLE postfix_line_words (
    first_id bigint NOT NULL,  -- the block's lines: postfix_lines.id from first_id to last_id
    last_id  bigint NOT NULL,
    words    tsvector NOT NULL
);
INSERT INTO postfix_line_words (first_id, last_id, words)
SELECT min(id), max(id), array_to_tsvector(array_agg(DISTINCT w.lexeme))
FROM postfix_lines, unnest(words) AS w
GROUP BY id / 512;
CREATE INDEX postfix_line_words_words ON postfix_line_words USING gin (words);
ALTER TABLE postfix_lines DROP COLUMN words;

-- A regular expression that holds on a line (matched case-insensitively, `~*`) when it has the
-- term's words adjacent and in order, the last one as a prefix; NULL for a term without words.
-- Every character but an ASCII letter or digit separates words, as in mg_words: none of the others
-- case-folds into [a-z0-9].
CREATE OR REPLACE FUNCTION mg_words_pattern(term text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT '(?:^|[^a-z0-9])' || string_agg(word, '[^a-z0-9]+' ORDER BY n) FROM mg_words(term)
    );
