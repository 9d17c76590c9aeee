-- Read models of the embedded (SQLite) backend, built from `events` by the in-process
-- projector (projections::sqlite). One process owns the file, so there are no generations:
-- a rebuild is one write transaction that clears and refills a family's tables, and WAL
-- readers keep seeing the old content until it commits. Timestamps are TEXT, RFC 3339 UTC
-- with exactly six fractional digits ("2026-01-02T03:04:05.123456Z"), so text order is time
-- order. UUIDs are 16-byte BLOBs (sqlx's SQLite encoding of `uuid::Uuid`).

-- One row per feed consumer: the last event it has applied, saved in the same transaction
-- as its effects. `tx_id` is the feed's commit id of that event (see projections::sqlite).
CREATE TABLE projection_checkpoints (
    name            TEXT    PRIMARY KEY,
    tx_id           INTEGER NOT NULL DEFAULT 0,
    global_position INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

-- The query table of process models (the columns of the PostgreSQL table, no generation).
CREATE TABLE process_models (
    id           BLOB    PRIMARY KEY CHECK (length(id) = 16),
    tenant_id    TEXT    NOT NULL,
    process_key  TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    -- The name in Unicode lower case (written by the projector): the case-insensitive name
    -- filter compares with it, as PostgreSQL's lower(name) does (SQLite's lower() folds
    -- ASCII only).
    name_lower   TEXT    NOT NULL,
    category     TEXT,
    description  TEXT,
    version      INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')),
    model_json   TEXT    NOT NULL CHECK (json_valid(model_json)),
    created_by   TEXT,
    created_time TEXT    NOT NULL,
    updated_by   TEXT,
    updated_time TEXT    NOT NULL,
    revision     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Every list is tenant-scoped: each filter and sort has an index led by tenant_id. (A name
-- substring search scans the tenant's rows; no index serves '%text%'.)
CREATE UNIQUE INDEX process_models_key ON process_models (tenant_id, process_key);
CREATE INDEX process_models_name ON process_models (tenant_id, name);
CREATE INDEX process_models_created ON process_models (tenant_id, created_time);
CREATE INDEX process_models_updated ON process_models (tenant_id, updated_time);
CREATE INDEX process_models_version ON process_models (tenant_id, version);
CREATE INDEX process_models_category ON process_models (tenant_id, category);
CREATE INDEX process_models_status ON process_models (tenant_id, status);
CREATE INDEX process_models_created_by ON process_models (tenant_id, created_by);

-- One immutable row per published version, with the editor JSON frozen at publish time.
CREATE TABLE model_versions (
    model_id       BLOB    NOT NULL CHECK (length(model_id) = 16),
    version        INTEGER NOT NULL,
    tenant_id      TEXT    NOT NULL,
    process_key    TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    model_json     TEXT    NOT NULL CHECK (json_valid(model_json)),
    comment        TEXT,
    published_by   TEXT,
    published_time TEXT    NOT NULL,
    PRIMARY KEY (model_id, version)
) STRICT, WITHOUT ROWID;
