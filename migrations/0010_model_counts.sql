-- How many models each tenant has per category and status, per generation: the `total` of a
-- model list filtered by nothing but category and/or status comes from here instead of a
-- `count(*)` over the matching index entries. Why: after a burst of writes the visibility
-- map lags behind and that count fetches every matching row from the heap; it was ≈ 80 % of
-- a list's database time (docs/performance.md, "Model counts").
--
-- The database keeps the counts itself, with a row trigger on `process_models` (cloned to
-- every partition, and to every table attached later). So every writer keeps them, whatever
-- version of the server it is (a rolling deploy runs old and new servers side by side), in
-- the transaction that writes the rows. A rebuild fills its generation's table detached,
-- without the trigger; `generation_table_attach` counts the table when it attaches it, and
-- the trigger carries on from there. Dropping a generation's table drops its counts.
CREATE TABLE process_model_counts
(
    generation bigint NOT NULL,
    tenant_id  text   NOT NULL,
    category   text,
    status     text   NOT NULL,
    models     bigint NOT NULL CHECK (models >= 0),
    -- A model without a category is counted under NULL, one row per tenant and status.
    UNIQUE NULLS NOT DISTINCT (generation, tenant_id, category, status)
);

INSERT INTO process_model_counts (generation, tenant_id, category, status, models)
SELECT generation, tenant_id, category, status, count(*)
  FROM process_models
 GROUP BY generation, tenant_id, category, status;

-- Moves a row's count from its old (tenant, category, status) to its new one.
CREATE FUNCTION process_model_counts_track() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS
$$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE process_model_counts SET models = models - 1
         WHERE generation = OLD.generation AND tenant_id = OLD.tenant_id
           AND category IS NOT DISTINCT FROM OLD.category AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO process_model_counts AS c (generation, tenant_id, category, status, models)
        VALUES (NEW.generation, NEW.tenant_id, NEW.category, NEW.status, 1)
        ON CONFLICT (generation, tenant_id, category, status)
        DO UPDATE SET models = c.models + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER process_model_counts_insert_delete
    AFTER INSERT OR DELETE ON process_models
    FOR EACH ROW EXECUTE FUNCTION process_model_counts_track();

-- Most updates (edits, saves, publishes) keep the category and status: they fire nothing.
CREATE TRIGGER process_model_counts_update
    AFTER UPDATE OF tenant_id, category, status ON process_models
    FOR EACH ROW
    WHEN (OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
          OR OLD.category IS DISTINCT FROM NEW.category
          OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION process_model_counts_track();

-- 0009's attach, which now also counts a `process_models` table it attaches. The counts of
-- a generation start from nothing here: its table was filled without the trigger.
CREATE OR REPLACE FUNCTION generation_table_attach(parent regclass, generation bigint)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS
$$
DECLARE
    name text := generation_table_name(parent, generation);
BEGIN
    EXECUTE format('ALTER TABLE %I RESET (fillfactor)', name);
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES IN (%s)', parent, name, generation);
    IF parent::text = 'process_models' THEN
        DELETE FROM process_model_counts c WHERE c.generation = generation_table_attach.generation;
        EXECUTE format('INSERT INTO process_model_counts (generation, tenant_id, category, status, models) '
                       'SELECT generation, tenant_id, category, status, count(*) FROM %I '
                       'GROUP BY generation, tenant_id, category, status', name);
    END IF;
END;
$$;

-- 0009's drop, which now also drops the counts of a `process_models` generation.
CREATE OR REPLACE FUNCTION generation_table_drop(parent regclass, generation bigint)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
    SET lock_timeout = '2s' AS
$$
BEGIN
    IF generation_is_active(parent, generation) THEN
        RAISE EXCEPTION 'generation % of % is active', generation, parent
            USING ERRCODE = 'object_in_use';
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I', generation_table_name(parent, generation));
    IF parent::text = 'process_models' THEN
        DELETE FROM process_model_counts c WHERE c.generation = generation_table_drop.generation;
    END IF;
END;
$$;
