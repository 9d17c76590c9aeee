-- The event store: the only source of truth. postgres-es names its insert columns, so the
-- extra defaulted columns (global_position, tx_id, recorded_at) are filled in by PostgreSQL.
CREATE TABLE events
(
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    -- Identity order is not commit order and rollbacks leave gaps: readers order by
    -- (tx_id, global_position) and only read transactions older than every open one.
    global_position bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX events_feed_order ON events (tx_id, global_position);

-- Append-only: history is never rewritten.
CREATE FUNCTION events_reject_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'the event store is append-only (% on events refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- Wakes feed readers; they poll as a fallback, so a lost notification only delays them.
CREATE FUNCTION events_notify_appended() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('events_appended', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify_appended();
