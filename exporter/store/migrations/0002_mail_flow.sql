-- Mail flow: parsed log tables per source, ingestion gaps, correlated messages with per-recipient status.
-- Replaces the foundation's generic log_lines table (it held only re-fetchable raw lines).

-- Word/prefix search that works on any PostgreSQL (the embedded server has no pg_trgm): text is
-- lower-cased and split on everything but [a-z0-9_], so "j.doe@gmail.com" indexes j, doe, gmail, com.
CREATE FUNCTION mg_search_vector(value text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_tsvector('simple', regexp_replace(lower(coalesce(value, '')), '[^a-z0-9_]+', ' ', 'g'));

-- The matching query: the term's words adjacent and in order, the last one as a prefix.
CREATE FUNCTION mg_search_query(term text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT CASE WHEN count(*) = 0 THEN NULL
                    ELSE to_tsquery('simple', string_agg(word, ' <-> ' ORDER BY n) || ':*') END
        FROM regexp_split_to_table(trim(regexp_replace(lower(term), '[^a-z0-9_]+', ' ', 'g')), ' ')
             WITH ORDINALITY AS t(word, n)
        WHERE word <> ''
    );

-- The correlation key of a queue-id lifecycle (opaque, stable, as the existing viewer's SHA-256 keys).
CREATE FUNCTION mg_queue_key(queue_id text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN encode(sha256(convert_to('q:' || queue_id, 'UTF8')), 'hex');

DROP TABLE log_lines;

ALTER TABLE ingest_state
    ADD COLUMN interval_seconds double precision,
    ADD COLUMN lines_per_second double precision,
    ADD COLUMN gaps_total bigint NOT NULL DEFAULT 0;

-- Identity of a line: sha256 over the whole item + its occurrence among identical items of the
-- fetched window (counted from the oldest), so repeated identical lines are all kept.
CREATE TABLE postfix_lines (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at        timestamptz NOT NULL,
    program          text NOT NULL,
    priority         text NOT NULL,
    message          text NOT NULL,
    line_key         bytea NOT NULL,
    occurrence       integer NOT NULL,
    kind             text NOT NULL,
    queue_id         text,
    sender           text,
    recipient        text,
    orig_to          text,
    status           text,
    dsn              text,
    relay            text,
    delay            double precision,
    delays           text,
    reply            text,
    size             bigint,
    nrcpt            integer,
    message_id       text,
    client_host      text,
    client_ip        text,
    sasl_method      text,
    sasl_username    text,
    reject_code      text,
    reject_class     text,
    helo             text,
    related_queue_id text,
    UNIQUE (line_key, occurrence)
);
CREATE INDEX postfix_lines_time ON postfix_lines (logged_at);
CREATE INDEX postfix_lines_queue ON postfix_lines (queue_id, logged_at) WHERE queue_id IS NOT NULL;
CREATE INDEX postfix_lines_kind_time ON postfix_lines (kind, logged_at);
CREATE INDEX postfix_lines_status ON postfix_lines (status, logged_at) WHERE status IS NOT NULL;
CREATE INDEX postfix_lines_search ON postfix_lines USING gin (mg_search_vector(message));

CREATE TABLE rspamd_rows (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at      timestamptz NOT NULL,
    message_id     text,
    subject        text,
    sender_smtp    text,
    sender_mime    text,
    rcpt_smtp      text[] NOT NULL DEFAULT '{}',
    rcpt_mime      text[] NOT NULL DEFAULT '{}',
    ip             text,
    "user"         text,
    action         text NOT NULL,
    score          double precision NOT NULL,
    required_score double precision,
    is_skipped     boolean NOT NULL DEFAULT false,
    is_spam        boolean NOT NULL,
    size           bigint,
    time_real      double precision,
    symbols        jsonb NOT NULL DEFAULT '{}',
    extra          jsonb,
    line_key       bytea NOT NULL,
    occurrence     integer NOT NULL,
    UNIQUE (line_key, occurrence)
);
CREATE INDEX rspamd_rows_time ON rspamd_rows (logged_at);
CREATE INDEX rspamd_rows_message_id ON rspamd_rows (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX rspamd_rows_sender_time ON rspamd_rows (sender_smtp, logged_at);
-- rspamd rows of mail without a Message-ID are linked by sender and time
CREATE INDEX rspamd_rows_no_message_id ON rspamd_rows (sender_smtp, logged_at) WHERE message_id IS NULL;
CREATE INDEX rspamd_rows_action_time ON rspamd_rows (action, logged_at);
CREATE INDEX rspamd_rows_search ON rspamd_rows
    USING gin (mg_search_vector(coalesce(subject, '') || ' ' || coalesce(sender_smtp, '') || ' '
                                || coalesce(message_id, '')));

CREATE TABLE netfilter_lines (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at     timestamptz NOT NULL,
    priority      text NOT NULL,
    message       text NOT NULL,
    kind          text NOT NULL,
    ip            text,
    network       text,
    rule_id       integer,
    attempts_left integer,
    ban_minutes   integer,
    username      text,
    auth_method   text,
    line_key      bytea NOT NULL,
    occurrence    integer NOT NULL,
    UNIQUE (line_key, occurrence)
);
CREATE INDEX netfilter_lines_time ON netfilter_lines (logged_at);
CREATE INDEX netfilter_lines_ip ON netfilter_lines (ip, logged_at);
CREATE INDEX netfilter_lines_kind ON netfilter_lines (kind, logged_at);
CREATE INDEX netfilter_lines_search ON netfilter_lines USING gin (mg_search_vector(message));

-- Items a parser could not read: kept verbatim so nothing fetched is ever silently dropped.
CREATE TABLE unparsed_lines (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    item        jsonb NOT NULL,
    error       text NOT NULL,
    line_key    bytea NOT NULL,
    occurrence  integer NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, line_key, occurrence)
);

-- mailcow's capped list rotated before we read it: lines between gap_start and gap_end are lost.
CREATE TABLE ingest_gaps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    gap_start   timestamptz NOT NULL,
    gap_end     timestamptz NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_gaps_time ON ingest_gaps (detected_at);

-- A message: one Postfix queue-id lifecycle, or one rejected delivery attempt (NOQUEUE / postscreen).
CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_key text NOT NULL UNIQUE,
    queue_id        text,
    message_id      text,
    sender          text,
    subject         text,
    first_recipient text,
    recipient_count integer NOT NULL DEFAULT 0,
    direction       text NOT NULL DEFAULT 'inbound',
    final_status    text NOT NULL DEFAULT 'queued',
    is_complete     boolean NOT NULL DEFAULT false,
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    service         text,
    client_host     text,
    client_ip       text,
    sasl_method     text,
    sasl_username   text,
    size            bigint,
    nrcpt           integer,
    removed_at      timestamptz,
    expired         boolean NOT NULL DEFAULT false,
    held            boolean NOT NULL DEFAULT false,
    deleted         boolean NOT NULL DEFAULT false,
    rejected        boolean NOT NULL DEFAULT false,
    reject_code     text,
    reject_class    text,
    reject_reason   text,
    helo            text,
    ndn_queue_id    text,
    origin_queue_id text,
    source_line_id  bigint,
    rspamd_row_id   bigint,
    rspamd_action   text,
    spam_score      double precision,
    is_spam         boolean NOT NULL DEFAULT false,
    quarantined     boolean NOT NULL DEFAULT false,
    search_text     text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_first_seen ON messages (first_seen DESC, id DESC);
CREATE INDEX messages_queue_id ON messages (queue_id);
CREATE INDEX messages_ndn ON messages (ndn_queue_id) WHERE ndn_queue_id IS NOT NULL;
CREATE INDEX messages_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX messages_sender ON messages (lower(sender), first_seen DESC);
CREATE INDEX messages_status ON messages (final_status, first_seen DESC);
CREATE INDEX messages_direction ON messages (direction, first_seen DESC);
CREATE INDEX messages_direction_status ON messages (direction, final_status, first_seen DESC);
CREATE INDEX messages_user ON messages (lower(sasl_username), first_seen DESC) WHERE sasl_username IS NOT NULL;
CREATE INDEX messages_ip ON messages (client_ip, first_seen DESC);
CREATE INDEX messages_spam ON messages (first_seen DESC) WHERE is_spam;
CREATE INDEX messages_incomplete ON messages (last_seen) WHERE NOT is_complete;
CREATE INDEX messages_unlinked ON messages (first_seen) WHERE rspamd_row_id IS NULL;
CREATE INDEX messages_rspamd ON messages (rspamd_row_id) WHERE rspamd_row_id IS NOT NULL;
CREATE INDEX messages_search ON messages USING gin (mg_search_vector(search_text));

CREATE TABLE message_recipients (
    message_pk bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient  text NOT NULL,
    orig_to    text,
    status     text NOT NULL,
    dsn        text,
    relay      text,
    delay      double precision,
    delays     text,
    reply      text,
    last_at    timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 1,
    PRIMARY KEY (message_pk, recipient)
);
CREATE INDEX message_recipients_recipient ON message_recipients (lower(recipient), message_pk);
CREATE INDEX message_recipients_orig_to ON message_recipients (lower(orig_to), message_pk) WHERE orig_to IS NOT NULL;

-- How far correlation has read each source table (the id of the last processed row).
CREATE TABLE correlation_state (
    source  text PRIMARY KEY,
    last_id bigint NOT NULL DEFAULT 0
);
INSERT INTO correlation_state (source) VALUES ('postfix'), ('rspamd');

-- Domains mailcow serves (synced by a job); with LOCAL_DOMAINS they decide message direction.
CREATE TABLE mailcow_domains (
    domain    text PRIMARY KEY,
    active    boolean NOT NULL DEFAULT true,
    synced_at timestamptz NOT NULL DEFAULT now()
);

-- Queue ids mailcow holds in quarantine (synced by a job).
CREATE TABLE quarantine_items (
    qitem_id  bigint PRIMARY KEY,
    queue_id  text NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_items_queue ON quarantine_items (queue_id);
