-- The embedded event store (SQLite). One writer at a time, so the order in which rows are
-- inserted is commit order: `global_position` (the rowid, never reused thanks to
-- AUTOINCREMENT) is the feed order and needs no transaction-id gate (DESIGN §7).
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    sequence        INTEGER NOT NULL CHECK (sequence >= 1),
    event_type      TEXT    NOT NULL,
    event_version   TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    metadata        TEXT    NOT NULL CHECK (json_valid(metadata)),
    recorded_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- The commit that appended the event: the global position of the commit's first event
    -- (PostgreSQL's counterpart is the transaction id). The audit log folds one command's
    -- events into one row by it. The writer sets it on the first insert of a commit to the
    -- position that insert is about to get (AUTOINCREMENT's next value, exact under
    -- SQLite's single writer) and reuses it for the commit's other events.
    tx_id           INTEGER NOT NULL,
    -- Optimistic concurrency: a second writer of the same sequence fails here.
    UNIQUE (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only');
END;
