-- One row per feed consumer (projector, relay): the feed position of the last event it has
-- processed. A consumer writes its effects and this row in one transaction, so effects are
-- applied exactly once. (0, 0) is before every event.
CREATE TABLE projection_checkpoints
(
    name            text        PRIMARY KEY,
    tx_id           xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
