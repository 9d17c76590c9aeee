-- The audit log: one row per accepted command (SUCCESS) and one per rejected command
-- (FAILURE), built from the event store by the `audit_logs` projector. Rows are a hash chain
-- per generation: `seq` runs 1, 2, 3… in feed order, `prev_hash` is the previous row's
-- `hash` (64 zeros for seq 1) and `hash` is the hex SHA-256 of the row's content, so
-- `flowable-ui audit verify` detects an edited, deleted, inserted or re-ordered row.
-- Everything in a row derives from the events, so a rebuild (generation N+1 from position 0)
-- reproduces the same rows and hashes. Deliberately no triggers or foreign keys: the log is
-- protected by the chain (and database privileges), and verify must be able to see tampering.

CREATE TABLE audit_logs
(
    generation      bigint      NOT NULL,
    -- Place in the chain: contiguous from 1 in feed order.
    seq             bigint      NOT NULL,
    -- The global position of the row's first event: stable across rebuilds.
    id              bigint      NOT NULL,
    tenant_id       text,
    user_id         text,
    action          text        NOT NULL,
    resource        text        NOT NULL,
    resource_id     text,
    ip_address      text,
    user_agent      text,
    "timestamp"     timestamptz NOT NULL,
    result          text        NOT NULL CHECK (result IN ('SUCCESS', 'FAILURE')),
    details         jsonb       NOT NULL,
    correlation_id  text,
    -- The global position of the row's last event.
    global_position bigint      NOT NULL,
    -- The appending transaction (`events.tx_id`): a command's events share it.
    tx_id           bigint      NOT NULL,
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL,
    PRIMARY KEY (generation, seq)
);

-- Lists are tenant-scoped and newest first (seq descending): each filter has an index led by
-- (generation, tenant_id) and ending in seq, so a page is an index range scan. Every index
-- costs rebuild speed, so `result` has a partial one: FAILURE rows are few, and a SUCCESS
-- filter matches almost every row, which the plain tenant index serves.
CREATE INDEX audit_logs_tenant ON audit_logs (generation, tenant_id, seq);
CREATE INDEX audit_logs_user ON audit_logs (generation, tenant_id, user_id, seq);
CREATE INDEX audit_logs_action ON audit_logs (generation, tenant_id, action, seq);
CREATE INDEX audit_logs_resource ON audit_logs (generation, tenant_id, resource_id, seq);
CREATE INDEX audit_logs_failure ON audit_logs (generation, tenant_id, seq)
    WHERE result = 'FAILURE';
CREATE INDEX audit_logs_timestamp ON audit_logs (generation, tenant_id, "timestamp");
