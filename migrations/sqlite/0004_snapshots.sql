-- Aggregate snapshots (see migrations/0005_snapshots.sql): a cache, never the source of
-- truth; rows of another `schema` are ignored and replaced.
CREATE TABLE aggregate_snapshots (
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL CHECK (sequence >= 1),
    schema         TEXT    NOT NULL,
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate_type, aggregate_id)
) STRICT;
