-- Event and snapshot payloads are stored as `json` (their text, checked for syntax) instead of
-- `jsonb` (a decoded tree). Nothing in the database looks inside a payload but the relay's
-- backlog query (`->`, `->>`, which `json` has too); every reader takes the text and decodes
-- it in the service. `jsonb` made each read pay for printing the tree back to text: for a
-- 16 KB editor document ≈ 130 µs of PostgreSQL CPU, most of a publish's stream load, and
-- each append pay for building it (docs/adr/0010-json-event-payloads.md).
--
-- The rewrite converts every stored payload once (its `jsonb` text, as it was read until
-- now) and holds an exclusive lock on the tables while it runs: 2.7 s for 100 000 events,
-- one in ten a 16 KB editor document, on this project's 2-core test machine. `metadata`
-- stays `jsonb`: it is small, and the relay's backlog filters on it.
ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE aggregate_snapshots ALTER COLUMN payload TYPE json USING payload::json;

-- The type change resets each column's compression method to the default: set 0008's again.
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE aggregate_snapshots ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION
    WHEN feature_not_supported THEN
        RAISE NOTICE 'lz4 compression is not supported by this server; payloads keep pglz';
END;
$$;
