-- The audit log of the embedded backend: the same rows and hash chain as the PostgreSQL
-- `audit_logs` (see migrations/0004_audit_logs.sql and projections::audit::hash), without
-- generations. `seq` (1, 2, 3… in feed order) is the rowid. Deliberately no triggers:
-- the log is protected by its chain, and `audit verify` must be able to see tampering.
CREATE TABLE audit_logs (
    seq             INTEGER PRIMARY KEY,
    -- The global position of the row's first event.
    id              INTEGER NOT NULL,
    tenant_id       TEXT,
    user_id         TEXT,
    action          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    resource_id     TEXT,
    ip_address      TEXT,
    user_agent      TEXT,
    "timestamp"     TEXT    NOT NULL,
    result          TEXT    NOT NULL CHECK (result IN ('SUCCESS', 'FAILURE')),
    details         TEXT    NOT NULL CHECK (json_valid(details)),
    correlation_id  TEXT,
    -- The global position of the row's last event.
    global_position INTEGER NOT NULL,
    -- The feed's commit id of the row's events (a command's events share it).
    tx_id           INTEGER NOT NULL,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL
) STRICT;

-- Lists are tenant-scoped and newest first (seq descending): each filter has an index led
-- by tenant_id and ending in seq, so a page is an index range scan. FAILURE rows are few:
-- a partial index serves that filter.
CREATE INDEX audit_logs_tenant ON audit_logs (tenant_id, seq);
CREATE INDEX audit_logs_user ON audit_logs (tenant_id, user_id, seq);
CREATE INDEX audit_logs_action ON audit_logs (tenant_id, action, seq);
CREATE INDEX audit_logs_resource ON audit_logs (tenant_id, resource_id, seq);
CREATE INDEX audit_logs_failure ON audit_logs (tenant_id, seq) WHERE result = 'FAILURE';
CREATE INDEX audit_logs_timestamp ON audit_logs (tenant_id, "timestamp");
