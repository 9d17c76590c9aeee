-- The append notification names the appending transaction (its `tx_id`), so a feed reader
-- whose checkpoint is already past that transaction knows the notification is stale and
-- need not read: most notifications reach a busy reader after it has read their events.
CREATE OR REPLACE FUNCTION events_notify_appended() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('events_appended', pg_current_xact_id()::text);
    RETURN NULL;
END;
$$;

-- Both are prefixes of the list indexes of 0006, which serve the same filters: one index
-- less to maintain on every change of a model.
DROP INDEX process_models_category;
DROP INDEX process_models_status;
