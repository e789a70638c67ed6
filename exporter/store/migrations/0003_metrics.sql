-- Prometheus state: persistent counters, mailcow status snapshots and API reachability.

-- Counters are incremented in the same transaction as the lines or messages they count, so every
-- web process and replica reports the same values, and they never go down: retention deletes
-- lines and messages, never these rows. Histogram buckets are counters with an "le" label.
CREATE TABLE metric_counters (
    name   text NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}',
    value  double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels)
);

-- A message is counted once, when it first reaches a final status.
ALTER TABLE messages ADD COLUMN counted boolean NOT NULL DEFAULT false;

-- The newest answer of each mailcow status endpoint (queue, containers, vmail, version, fail2ban).
CREATE TABLE mailcow_snapshots (
    kind       text PRIMARY KEY,
    data       jsonb NOT NULL,
    fetched_at timestamptz NOT NULL
);

-- Whether each group of mailcow API endpoints answered the last time a job used it.
CREATE TABLE mailcow_api_health (
    endpoint_group  text PRIMARY KEY,
    up              boolean NOT NULL,
    checked_at      timestamptz NOT NULL,
    last_success_at timestamptz,
    last_error      text
);

-- A bounded label for the far end of a delivery: the big mailbox providers by recipient domain or
-- relay host, "local" for mailcow's own domains, "other" for everything else.
CREATE FUNCTION mg_remote_class(domain text, relay text, local_domains text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN lower(domain) = ANY(local_domains) THEN 'local'
        WHEN lower(domain) IN ('gmail.com', 'googlemail.com') OR lower(relay) ~ '(google|googlemail)\.com\['
            THEN 'google'
        WHEN lower(domain) ~ '^(outlook|hotmail|live|msn)\.' OR lower(relay) ~ '\.outlook\.com\['
            THEN 'microsoft'
        WHEN lower(domain) ~ '^(yahoo|ymail|aol)\.' OR lower(relay) ~ 'yahoodns\.net\[' THEN 'yahoo'
        WHEN lower(domain) IN ('icloud.com', 'me.com', 'mac.com') OR lower(relay) ~ '\.icloud\.com\[' THEN 'apple'
        WHEN lower(domain) IN ('gmx.de', 'gmx.net', 'gmx.at', 'gmx.ch', 'gmx.com', 'web.de')
            OR lower(relay) ~ '\.(gmx\.net|web\.de)\[' THEN 'gmx_webde'
        ELSE 'other'
    END;

-- Complete messages not yet counted (normally none: they are counted as they complete).
CREATE INDEX messages_uncounted ON messages (id) WHERE is_complete AND NOT counted;
