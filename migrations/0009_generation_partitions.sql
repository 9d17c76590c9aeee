-- Each generation of a read table is a partition of its own (ADR 0007): `process_models`,
-- `model_versions` and `audit_logs` become `PARTITION BY LIST (generation)`, and generation
-- N lives in `<table>_g<N>`. A rebuild fills its generation's table with the primary key
-- only, builds the other indexes once when it attaches the table (instead of updating them
-- row by row), and drops the retired generation's table instead of deleting its rows.
--
-- The columns, defaults, CHECKs, storage and compression are copied from the tables as
-- 0003–0008 left them; the rows move into one partition per generation they hold (and one
-- for the active generation, so the live projectors always have a table to write). The
-- indexes are those 0003, 0004, 0006 and 0007 left, now on the partitioned tables: every
-- partition gets them, and a table attached later gets them built.
DO $$
DECLARE
    t record;
    g bigint;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('process_models', 'process_models'),
                                   ('model_versions', 'process_models'),
                                   ('audit_logs', 'audit_logs')) AS t(tbl, family)
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t.tbl, t.tbl || '_unpartitioned');
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                       'INCLUDING STORAGE INCLUDING COMPRESSION) PARTITION BY LIST (generation)',
                       t.tbl, t.tbl || '_unpartitioned');
        FOR g IN EXECUTE format('SELECT generation FROM %I UNION '
                                'SELECT active FROM projection_generations WHERE name = %L',
                                t.tbl || '_unpartitioned', t.family)
        LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%s)',
                           t.tbl || '_g' || g, t.tbl, g);
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t.tbl, t.tbl || '_unpartitioned');
        EXECUTE format('DROP TABLE %I', t.tbl || '_unpartitioned');
    END LOOP;
END;
$$;

ALTER TABLE process_models ADD PRIMARY KEY (generation, id);
CREATE UNIQUE INDEX process_models_key ON process_models (generation, tenant_id, process_key);
CREATE INDEX process_models_name ON process_models (generation, tenant_id, name, id);
CREATE INDEX process_models_created ON process_models (generation, tenant_id, created_time);
CREATE INDEX process_models_updated ON process_models (generation, tenant_id, updated_time, id);
CREATE INDEX process_models_version ON process_models (generation, tenant_id, version);
CREATE INDEX process_models_created_by ON process_models (generation, tenant_id, created_by);
CREATE INDEX process_models_name_like ON process_models USING gin (lower(name) gin_trgm_ops);
CREATE INDEX process_models_category_name
    ON process_models (generation, tenant_id, category, name, id);
CREATE INDEX process_models_status_updated
    ON process_models (generation, tenant_id, status, updated_time, id);

ALTER TABLE model_versions ADD PRIMARY KEY (generation, model_id, version);

ALTER TABLE audit_logs ADD PRIMARY KEY (generation, seq);
CREATE INDEX audit_logs_tenant ON audit_logs (generation, tenant_id, seq);
CREATE INDEX audit_logs_user ON audit_logs (generation, tenant_id, user_id, seq);
CREATE INDEX audit_logs_action ON audit_logs (generation, tenant_id, action, seq);
CREATE INDEX audit_logs_resource ON audit_logs (generation, tenant_id, resource_id, seq);
CREATE INDEX audit_logs_failure ON audit_logs (generation, tenant_id, seq)
    WHERE result = 'FAILURE';
CREATE INDEX audit_logs_timestamp ON audit_logs (generation, tenant_id, "timestamp");
