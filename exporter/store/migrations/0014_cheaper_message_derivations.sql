-- Cheaper per-message work in correlation; every function returns exactly what it did before.

-- The local domains a message belongs to for the rollup ('' always), sorted: one expression the
-- planner inlines, instead of a subquery run per message.
CREATE OR REPLACE FUNCTION mg_rollup_domains(sender text, recipient text, local_domains text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY[''] || CASE
        WHEN lower(split_part(sender, '@', 2)) = ANY(local_domains)
             AND lower(split_part(recipient, '@', 2)) = ANY(local_domains)
             AND lower(split_part(sender, '@', 2)) <> lower(split_part(recipient, '@', 2))
            THEN ARRAY[least(lower(split_part(sender, '@', 2)), lower(split_part(recipient, '@', 2))),
                       greatest(lower(split_part(sender, '@', 2)), lower(split_part(recipient, '@', 2)))]
        WHEN lower(split_part(sender, '@', 2)) = ANY(local_domains) THEN ARRAY[lower(split_part(sender, '@', 2))]
        WHEN lower(split_part(recipient, '@', 2)) = ANY(local_domains) THEN ARRAY[lower(split_part(recipient, '@', 2))]
        ELSE '{}'::text[]
    END;

-- The 1-based position of the smallest of the ascending `bounds` that is >= value (one past the
-- last when value exceeds them all): a delay's histogram bucket, by binary search.
CREATE FUNCTION mg_bound_index(value double precision, bounds double precision[]) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN width_bucket(value, bounds) + CASE WHEN bounds[width_bucket(value, bounds)] = value THEN 0 ELSE 1 END;
