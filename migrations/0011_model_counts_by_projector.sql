-- The models projector keeps `process_model_counts` itself, one statement per batch with the
-- changes netted per key (projections/src/models/counts.rs): 0010's row triggers ran two
-- statements per status change and one per new row, each on one of a few hot counter rows,
-- ≈ 76 µs of a publish's PostgreSQL time (docs/performance.md, "Counts by the projector").
--
-- The triggers stay for every other writer (an older server's projector during a rolling
-- deploy, a manual fix): a projector that counts sets `flowable.models_counted` for its
-- transaction, and the triggers' conditions, checked without calling the function, skip
-- its rows.
DROP TRIGGER process_model_counts_insert_delete ON process_models;
DROP TRIGGER process_model_counts_update ON process_models;

CREATE TRIGGER process_model_counts_insert_delete
    AFTER INSERT OR DELETE ON process_models
    FOR EACH ROW
    WHEN (current_setting('flowable.models_counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION process_model_counts_track();

CREATE TRIGGER process_model_counts_update
    AFTER UPDATE OF tenant_id, category, status ON process_models
    FOR EACH ROW
    WHEN ((OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
           OR OLD.category IS DISTINCT FROM NEW.category
           OR OLD.status IS DISTINCT FROM NEW.status)
          AND current_setting('flowable.models_counted', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION process_model_counts_track();
