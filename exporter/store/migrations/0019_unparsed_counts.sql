-- Items a parser could not read, per source: a counter (each stored unparsed item counted once, for
-- /metrics and /api/settings/info) and how many of the last fetch's items were unreadable (health
-- reports a source degraded when most of a fetch is garbage, e.g. a proxy's answer in the list).
ALTER TABLE ingest_state
    ADD COLUMN unparsed_total bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_unparsed integer NOT NULL DEFAULT 0;
