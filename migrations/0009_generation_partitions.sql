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

-- The DDL of a rebuild (ADR 0007) as functions of the schema's owner. The server's role needs
-- DML on the read tables and EXECUTE on these, no more (deploy/README.md, "Secrets"). Each
-- works on a generation's table of the three tables above and nothing else, and none drops a
-- generation that is active.

-- The table of generation `generation` of `parent`.
CREATE FUNCTION generation_table_name(parent regclass, generation bigint) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS
$$
BEGIN
    IF parent::text NOT IN ('process_models', 'model_versions', 'audit_logs') THEN
        RAISE EXCEPTION '% has no generations', parent USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF generation IS NULL OR generation < 1 THEN
        RAISE EXCEPTION 'no generation %', generation USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN parent::text || '_g' || generation;
END;
$$;

-- Creates generation `generation`'s table of `parent` empty and detached: its columns,
-- defaults, CHECKs, storage and compression, its primary key, `CHECK (generation = N)` (so
-- the attach needs no scan) and no other index; a table of that name left over is dropped
-- first. `fill_factor` (NULL: the default) leaves room for the rows a rebuild rewrites. The
-- caller gets the DML it needs to fill it by name.
CREATE FUNCTION generation_table_create(parent regclass, generation bigint, fill_factor integer)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS
$$
DECLARE
    name text := generation_table_name(parent, generation);
    key  text;
BEGIN
    IF generation_is_active(parent, generation) THEN
        RAISE EXCEPTION 'generation % of % is active', generation, parent
            USING ERRCODE = 'object_in_use';
    END IF;
    SELECT pg_get_constraintdef(oid) INTO STRICT key
      FROM pg_constraint WHERE conrelid = parent AND contype = 'p';
    EXECUTE format('DROP TABLE IF EXISTS %I', name);
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE INCLUDING COMPRESSION)', name, parent);
    EXECUTE format('ALTER TABLE %I ADD %s, ADD CHECK (generation = %s)', name, key, generation);
    IF fill_factor IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I SET (fillfactor = %s)', name, fill_factor);
    END IF;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO %I', name, session_user);
END;
$$;

-- Attaches generation `generation`'s table to `parent`, which builds `parent`'s indexes on
-- it, and gives it `parent`'s fill factor back. `SHARE UPDATE EXCLUSIVE` on `parent`: the
-- other generations are read and written meanwhile.
CREATE FUNCTION generation_table_attach(parent regclass, generation bigint)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS
$$
DECLARE
    name text := generation_table_name(parent, generation);
BEGIN
    EXECUTE format('ALTER TABLE %I RESET (fillfactor)', name);
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES IN (%s)', parent, name, generation);
END;
$$;

-- Drops generation `generation`'s table of `parent`, attached or not, unless it is active.
-- `ACCESS EXCLUSIVE` on `parent` for a moment: it waits at most 2 s for the queries reading
-- `parent` (queries arriving meanwhile queue behind it), then fails with `lock_not_available`.
CREATE FUNCTION generation_table_drop(parent regclass, generation bigint)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
    SET lock_timeout = '2s' AS
$$
BEGIN
    IF generation_is_active(parent, generation) THEN
        RAISE EXCEPTION 'generation % of % is active', generation, parent
            USING ERRCODE = 'object_in_use';
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I', generation_table_name(parent, generation));
END;
$$;

-- Analyzes generation `generation`'s table of `parent`, or `parent` itself (and with it its
-- partitions) when `generation` is NULL. Autovacuum never analyzes a partitioned table.
CREATE FUNCTION generation_table_analyze(parent regclass, generation bigint)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS
$$
BEGIN
    IF generation IS NULL THEN
        PERFORM generation_table_name(parent, 1); -- one of the three tables
        EXECUTE format('ANALYZE %s', parent);
    ELSE
        EXECUTE format('ANALYZE %I', generation_table_name(parent, generation));
    END IF;
END;
$$;

-- The generations of `parent` that have a table, attached or not.
CREATE FUNCTION generation_tables(parent regclass) RETURNS SETOF bigint
    LANGUAGE sql STABLE SET search_path FROM CURRENT AS
$$
    SELECT substring(relname FROM '_g([0-9]+)$')::bigint
      FROM pg_class
     WHERE relkind = 'r' AND pg_table_is_visible(oid)
       AND relname ~ ('^' || parent::text || '_g[0-9]+$')
     ORDER BY 1
$$;

-- Whether `generation` is the active generation of `parent`'s family.
CREATE FUNCTION generation_is_active(parent regclass, generation bigint) RETURNS boolean
    LANGUAGE sql STABLE SET search_path FROM CURRENT AS
$$
    SELECT EXISTS (SELECT 1 FROM projection_generations
                    WHERE name = CASE parent::text WHEN 'audit_logs' THEN 'audit_logs'
                                                   ELSE 'process_models' END
                      AND active = generation)
$$;

REVOKE ALL ON FUNCTION generation_table_create(regclass, bigint, integer),
                       generation_table_attach(regclass, bigint),
                       generation_table_drop(regclass, bigint),
                       generation_table_analyze(regclass, bigint) FROM PUBLIC;
