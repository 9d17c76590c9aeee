-- List pages in index order (docs/performance.md, finding 2). Every list query orders by
-- its sort column and then `id` (the tie-breaker that keeps paging stable), so the sort
-- indexes end with `id`; and the filter + sort pairs the UI uses most (a category sorted by
-- name, a status sorted by last update) get an index each, so a page reads its rows in
-- order instead of walking the whole tenant and discarding the other categories.
DROP INDEX process_models_name;
CREATE INDEX process_models_name ON process_models (generation, tenant_id, name, id);
DROP INDEX process_models_updated;
CREATE INDEX process_models_updated ON process_models (generation, tenant_id, updated_time, id);
CREATE INDEX process_models_category_name
    ON process_models (generation, tenant_id, category, name, id);
CREATE INDEX process_models_status_updated
    ON process_models (generation, tenant_id, status, updated_time, id);
