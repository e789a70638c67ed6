-- Foundation schema: background job status, per-source ingestion state and raw log lines.
-- All times are timestamptz (UTC); sessions are pinned to UTC by the application.

CREATE TABLE job_status (
    name                  text PRIMARY KEY,
    status                text NOT NULL DEFAULT 'idle'
                          CHECK (status IN ('idle', 'running', 'success', 'failed')),
    last_run_at           timestamptz,
    last_success_at       timestamptz,
    last_duration_seconds double precision,
    last_error            text,
    runs                  bigint NOT NULL DEFAULT 0,
    failures              bigint NOT NULL DEFAULT 0
);

CREATE TABLE ingest_state (
    source          text PRIMARY KEY,
    last_fetch_at   timestamptz,
    last_success_at timestamptz,
    newest_line_at  timestamptz,
    oldest_line_at  timestamptz,
    lines_total     bigint NOT NULL DEFAULT 0,
    last_fetched    integer NOT NULL DEFAULT 0,
    last_inserted   integer NOT NULL DEFAULT 0,
    last_error      text
);

-- One row per log line as mailcow returned it. A line's identity is a hash over the whole
-- item plus its occurrence among identical items of the same fetch window, so genuinely
-- repeated lines are all kept while re-loading a page adds nothing.
CREATE TABLE log_lines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    logged_at   timestamptz NOT NULL,
    program     text,
    priority    text,
    message     text NOT NULL,
    extra       jsonb,
    line_key    bytea NOT NULL,
    occurrence  integer NOT NULL DEFAULT 0,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, line_key, occurrence)
);

CREATE INDEX log_lines_source_time ON log_lines (source, logged_at DESC);
CREATE INDEX log_lines_time ON log_lines (logged_at);
