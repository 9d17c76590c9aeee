-- Aggregate snapshots: the command service's cache of an aggregate's state at a sequence,
-- so loading a long stream reads the snapshot and the events after it instead of the whole
-- history. Never the source of truth: a row can be deleted at any time, and a row whose
-- `schema` differs from the running code's is ignored and replaced.
CREATE TABLE aggregate_snapshots (
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    sequence       BIGINT      NOT NULL CHECK (sequence >= 1),
    schema         TEXT        NOT NULL,
    payload        JSONB       NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
