-- Hourly message counts for Grafana's long ranges: a 30-day panel sums ~720 rows per series
-- instead of scanning every message. Kept exact by correlation: each message remembers what it
-- last added (rolled_*), and every re-derivation moves its count from the old key to the new one.
CREATE TABLE message_rollup (
    bucket    timestamptz NOT NULL,   -- the hour of first_seen
    domain    text NOT NULL,          -- '' counts every message; otherwise a local domain of its sender or recipient
    direction text NOT NULL,
    status    text NOT NULL,
    spam      boolean NOT NULL,
    messages  bigint NOT NULL,
    PRIMARY KEY (bucket, domain, direction, status, spam)
);
CREATE INDEX message_rollup_domain ON message_rollup (domain, bucket);

ALTER TABLE messages
    ADD COLUMN rolled_bucket    timestamptz,
    ADD COLUMN rolled_direction text,
    ADD COLUMN rolled_status    text,
    ADD COLUMN rolled_spam      boolean,
    ADD COLUMN rolled_domains   text[];

-- The local domains a message belongs to for the rollup ('' always).
CREATE FUNCTION mg_rollup_domains(sender text, recipient text, local_domains text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT DISTINCT d FROM unnest(ARRAY['', lower(split_part(sender, '@', 2)), lower(split_part(recipient, '@', 2))]) d
        WHERE d = '' OR d = ANY(local_domains) ORDER BY d
    );

-- Daily counts per sender, recipient, domain, user and reject reason for the top lists, kept the
-- same way; `facet` names the list, `name` the entry.
CREATE TABLE message_facets (
    bucket    timestamptz NOT NULL,   -- the UTC day of first_seen
    facet     text NOT NULL,
    name      text NOT NULL,
    messages  bigint NOT NULL,
    delivered bigint NOT NULL,
    failed    bigint NOT NULL,
    spam      bigint NOT NULL,
    PRIMARY KEY (facet, bucket, name)
);
ALTER TABLE messages ADD COLUMN rolled_facets text[];

-- The top-list entries of a message, as 'facet<US>name'.
CREATE FUNCTION mg_message_facets(sender text, recipient text, username text, reject_class text, status text)
    RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN array_remove(ARRAY[
        CASE WHEN coalesce(sender, '') <> '' THEN 'senders' || chr(31) || lower(sender) END,
        CASE WHEN coalesce(recipient, '') <> '' THEN 'recipients' || chr(31) || lower(recipient) END,
        CASE WHEN sender LIKE '%@%' THEN 'sender_domains' || chr(31) || lower(split_part(sender, '@', 2)) END,
        CASE WHEN recipient LIKE '%@%' THEN 'recipient_domains' || chr(31) || lower(split_part(recipient, '@', 2)) END,
        CASE WHEN username IS NOT NULL THEN 'users' || chr(31) || lower(username) END,
        CASE WHEN status = 'rejected' THEN 'reject_reasons' || chr(31) || coalesce(reject_class, 'other') END
    ], NULL);

-- Messages stored before this migration: roll them up once, with mailcow's synced domains.
UPDATE messages SET rolled_bucket = date_trunc('hour', first_seen AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                    rolled_direction = direction, rolled_status = final_status, rolled_spam = is_spam,
                    rolled_domains = mg_rollup_domains(sender, first_recipient,
                                                       ARRAY(SELECT domain FROM mailcow_domains)),
                    rolled_facets = mg_message_facets(sender, first_recipient, sasl_username, reject_class,
                                                      final_status);
INSERT INTO message_rollup (bucket, domain, direction, status, spam, messages)
SELECT rolled_bucket, d, rolled_direction, rolled_status, rolled_spam, count(*)
FROM messages, unnest(rolled_domains) d GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_facets (bucket, facet, name, messages, delivered, failed, spam)
SELECT date_trunc('day', rolled_bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', split_part(f, chr(31), 1),
       split_part(f, chr(31), 2), count(*), count(*) FILTER (WHERE rolled_status = 'delivered'),
       count(*) FILTER (WHERE rolled_status IN ('bounced', 'expired', 'rejected')), count(*) FILTER (WHERE rolled_spam)
FROM messages, unnest(rolled_facets) f GROUP BY 1, 2, 3;

-- Deferral and bounce replies per day (numbers masked so they group), counted from each delivery
-- line once: the top-reason tables over long ranges.
CREATE TABLE reason_rollup (
    bucket timestamptz NOT NULL,
    status text NOT NULL,
    reason text NOT NULL,
    count  bigint NOT NULL,
    PRIMARY KEY (status, bucket, reason)
);

-- Delivery delays of delivered recipients per hour and direction as histogram buckets (counted
-- from each delivery line once), so delay percentiles over long ranges need no scan either.
CREATE TABLE delay_rollup (
    bucket    timestamptz NOT NULL,
    direction text NOT NULL,
    le        double precision NOT NULL,  -- upper bound in seconds; 'Infinity' for the rest
    count     bigint NOT NULL,
    PRIMARY KEY (bucket, direction, le)
);
