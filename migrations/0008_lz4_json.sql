-- The large JSON columns (editor documents of 10–100 KB) are TOAST-compressed with lz4
-- instead of PostgreSQL's default pglz: a publish spent ≈ 10 % of PostgreSQL's CPU in
-- pglz_compress writing the frozen version, and every load of a model's stream or a
-- snapshot decompresses. lz4 compresses several times faster and decompresses faster,
-- for slightly larger values. Only values written from now on use it; older ones stay
-- pglz and are read as before (each value records its method).
--
-- A PostgreSQL built without lz4 (`--without-lz4`) refuses the method; the columns then
-- keep pglz and the migration still succeeds, with a notice.
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE aggregate_snapshots ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE process_models ALTER COLUMN model_json SET COMPRESSION lz4;
    ALTER TABLE model_versions ALTER COLUMN model_json SET COMPRESSION lz4;
EXCEPTION
    WHEN feature_not_supported THEN
        RAISE NOTICE 'lz4 compression is not supported by this server; JSON columns keep pglz';
END;
$$;
