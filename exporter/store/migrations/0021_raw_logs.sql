-- All ten mailcow log lists (issue 22): every line as mailcow sent it plus the columns a log query
-- filters on. Three tables, each partitioned by UTC day so retention drops whole partitions (its cost
-- does not grow with the table); exporter/store/raw_logs.py creates the partitions as days arrive.
--
-- raw_lines: one row per line. `item` is mailcow's JSON object untouched; `message` is the text a
-- person reads (exporter/parsers/raw_logs.py builds it for the services that send fields only). The
-- identity (line_key, occurrence) is exporter/parsers/lines.number_window's, so an overlapping fetch
-- inserts only what is new; the key hashes the time, so the partition key belongs to it.
CREATE SEQUENCE raw_lines_id_seq;
CREATE TABLE raw_lines (
    id         bigint NOT NULL DEFAULT nextval('raw_lines_id_seq'),
    at         timestamptz NOT NULL,
    service    text NOT NULL,
    level      text NOT NULL,
    program    text,
    message    text NOT NULL,
    item       jsonb NOT NULL,
    line_key   bytea NOT NULL,
    occurrence integer NOT NULL
) PARTITION BY RANGE (at);
CREATE UNIQUE INDEX raw_lines_identity ON raw_lines (at, line_key, occurrence);
CREATE INDEX raw_lines_service_time ON raw_lines (service, at, id);
CREATE INDEX raw_lines_level_time ON raw_lines (level, at, id);
CREATE INDEX raw_lines_id ON raw_lines (id);

-- raw_line_blocks: the search index. A block is up to 512 consecutive stored lines of one service and
-- one day; `grams` holds every three-character substring of their lower-cased text (ASCII letters
-- folded), so a substring search (REST `search`, LogQL `|=`) first finds the few blocks that can hold
-- it through the GIN index and then checks only their lines. The embedded PostgreSQL has no pg_trgm.
CREATE TABLE raw_line_blocks (
    service  text NOT NULL,
    first_id bigint NOT NULL,
    last_id  bigint NOT NULL,
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL,
    grams    tsvector NOT NULL,
    complete boolean NOT NULL DEFAULT true  -- false: one line had more grams than a tsvector holds,
                                            -- so every search checks this block's lines
) PARTITION BY RANGE (first_at);
CREATE INDEX raw_line_blocks_grams ON raw_line_blocks USING gin (grams);
CREATE INDEX raw_line_blocks_time ON raw_line_blocks (service, last_at);
CREATE INDEX raw_line_blocks_incomplete ON raw_line_blocks (service, last_at) WHERE NOT complete;

-- raw_line_counts: lines and bytes per minute, service, level and program, kept as lines are stored:
-- log volume and LogQL metric queries without line filters read this instead of the lines.
CREATE TABLE raw_line_counts (
    minute  timestamptz NOT NULL,
    service text NOT NULL,
    level   text NOT NULL,
    program text NOT NULL,
    lines   bigint NOT NULL,
    bytes   bigint NOT NULL,
    PRIMARY KEY (minute, service, level, program)
) PARTITION BY RANGE (minute);
