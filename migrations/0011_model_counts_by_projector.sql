-- The models projector keeps `process_model_counts` itself, one statement per batch with the
-- changes netted per key (projections/src/models/counts.rs), instead of 0010's row triggers:
-- those ran two statements per status change and one per new row, each on one of a few hot
-- counter rows, ≈ 76 µs of a publish's PostgreSQL time (docs/performance.md, "Model counts").
-- Only the projectors write `process_models` rows of an attached generation; a rebuild's
-- fill writes its own table before the attach counts it (`generation_table_attach`, kept).
DROP TRIGGER process_model_counts_update ON process_models;
DROP TRIGGER process_model_counts_insert_delete ON process_models;
DROP FUNCTION process_model_counts_track();
