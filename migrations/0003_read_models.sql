-- Read models built from the event store by projectors. Every row carries the generation
-- it belongs to: queries read the active generation, a rebuild writes the next one from
-- position 0 and a single transaction makes it active (reads keep being served, with the
-- old content, until then). No DDL at run time.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE projection_generations
(
    name   text   PRIMARY KEY,
    active bigint NOT NULL DEFAULT 1
);

INSERT INTO projection_generations (name) VALUES ('process_models'), ('audit_logs');

-- The query table of process models (columns of the original schema, plus updated_by and
-- revision).
CREATE TABLE process_models
(
    generation   bigint      NOT NULL,
    id           uuid        NOT NULL,
    tenant_id    text        NOT NULL,
    process_key  text        NOT NULL,
    name         text        NOT NULL,
    category     text,
    description  text,
    version      integer     NOT NULL,
    status       text        NOT NULL CHECK (status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')),
    model_json   jsonb       NOT NULL,
    created_by   text,
    created_time timestamptz NOT NULL,
    updated_by   text,
    updated_time timestamptz NOT NULL,
    revision     bigint      NOT NULL,
    PRIMARY KEY (generation, id)
);

-- Every list is tenant-scoped: each filter and sort has an index led by (generation, tenant).
CREATE UNIQUE INDEX process_models_key ON process_models (generation, tenant_id, process_key);
CREATE INDEX process_models_name ON process_models (generation, tenant_id, name);
CREATE INDEX process_models_created ON process_models (generation, tenant_id, created_time);
CREATE INDEX process_models_updated ON process_models (generation, tenant_id, updated_time);
CREATE INDEX process_models_version ON process_models (generation, tenant_id, version);
CREATE INDEX process_models_category ON process_models (generation, tenant_id, category);
CREATE INDEX process_models_status ON process_models (generation, tenant_id, status);
CREATE INDEX process_models_created_by ON process_models (generation, tenant_id, created_by);
CREATE INDEX process_models_name_like ON process_models USING gin (lower(name) gin_trgm_ops);

-- One immutable row per published version, with the editor JSON frozen at publish time.
CREATE TABLE model_versions
(
    generation     bigint      NOT NULL,
    model_id       uuid        NOT NULL,
    version        integer     NOT NULL,
    tenant_id      text        NOT NULL,
    process_key    text        NOT NULL,
    name           text        NOT NULL,
    model_json     jsonb       NOT NULL,
    comment        text,
    published_by   text,
    published_time timestamptz NOT NULL,
    PRIMARY KEY (generation, model_id, version)
);
