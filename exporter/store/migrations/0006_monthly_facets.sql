-- Top lists over long ranges read one row per (list, UTC month, name) holding running totals per
-- day of the month, so a 30-day range costs two rows per name (any range: one per month touched)
-- instead of one per name and day: with mostly distinct senders a month of daily rows was ~1M rows.
-- Counts of days `a..b` of a month = mg_cum(counts, first_day, b) - mg_cum(counts, first_day, a - 1).
DROP TABLE message_facets;
CREATE TABLE message_facets (
    facet     text NOT NULL,
    month     timestamptz NOT NULL,   -- the UTC month of first_seen
    name      text NOT NULL,
    first_day int NOT NULL,           -- the day of the month that element 1 of the arrays is
    messages  int[] NOT NULL,         -- running totals from first_day on; past the end, the last one holds
    delivered int[] NOT NULL,
    failed    int[] NOT NULL,
    spam      int[] NOT NULL,
    PRIMARY KEY (facet, month, name)
);

-- The running total up to and including `day` (0 before first_day).
CREATE FUNCTION mg_cum(counts int[], first_day int, day int) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN coalesce(counts[least(day - first_day + 1, cardinality(counts))], 0);

-- Running totals from the first to the last of `days`, from per-day counts.
CREATE FUNCTION mg_prefix(days int[], counts bigint[]) RETURNS int[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT (SELECT coalesce(sum(c), 0) FROM unnest(days, counts) u (d, c) WHERE d <= i)::int
        FROM generate_series((SELECT min(d) FROM unnest(days) d), (SELECT max(d) FROM unnest(days) d)) i ORDER BY i
    );

-- The sum of two running-total arrays, starting at the earlier first day.
CREATE FUNCTION mg_prefix_add(a int[], a_first int, b int[], b_first int) RETURNS int[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT mg_cum(a, a_first, i) + mg_cum(b, b_first, i)
        FROM generate_series(least(a_first, b_first),
                             greatest(a_first + cardinality(a), b_first + cardinality(b)) - 1) i ORDER BY i
    );

-- Running totals without the days before `from_day` (retention), starting at from_day.
CREATE FUNCTION mg_prefix_from(a int[], a_first int, from_day int) RETURNS int[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(
        SELECT mg_cum(a, a_first, i) - mg_cum(a, a_first, from_day - 1)
        FROM generate_series(from_day, greatest(from_day, a_first + cardinality(a) - 1)) i ORDER BY i
    );

INSERT INTO message_facets (facet, month, name, first_day, messages, delivered, failed, spam)
SELECT split_part(entry, chr(31), 1), month, split_part(entry, chr(31), 2), min(day),
       mg_prefix(array_agg(day), array_agg(messages)), mg_prefix(array_agg(day), array_agg(delivered)),
       mg_prefix(array_agg(day), array_agg(failed)), mg_prefix(array_agg(day), array_agg(spam))
FROM (
    SELECT date_trunc('month', rolled_bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month,
           extract(day FROM rolled_bucket AT TIME ZONE 'UTC')::int AS day, entry, count(*) AS messages,
           count(*) FILTER (WHERE rolled_status = 'delivered') AS delivered,
           count(*) FILTER (WHERE rolled_status IN ('bounced', 'expired', 'rejected')) AS failed,
           count(*) FILTER (WHERE rolled_spam) AS spam
    FROM messages, unnest(rolled_facets) entry WHERE rolled_bucket IS NOT NULL
    GROUP BY 1, 2, 3
) AS daily
GROUP BY entry, month;
