-- cadre's initial schema on PostgreSQL: the same tables, columns and indexes as
-- ../20251125000000_init.sql (SQLite), in PostgreSQL's types. The store runs one query
-- text on both, so: every integer is BIGINT (the store reads i64), flags are BIGINT 0/1,
-- reals are DOUBLE PRECISION, and the tables listed "in insertion order" carry a `rowid`
-- identity as SQLite's tables have implicitly. Never edit this file once applied: sqlx
-- verifies checksums. Add a new `<timestamp>_<name>.sql` here beside each SQLite one.

CREATE TABLE jobs (
    id               TEXT             PRIMARY KEY NOT NULL,
    instruction      TEXT             NOT NULL,
    workspace        TEXT             NOT NULL,
    options_json     TEXT             NOT NULL,
    priority         BIGINT           NOT NULL DEFAULT 0,
    budget_usd       DOUBLE PRECISION,
    status           TEXT             NOT NULL,
    reason           TEXT             NOT NULL DEFAULT '',
    plan_json        TEXT,
    report_json      TEXT,
    patch            TEXT,
    wall_ms          BIGINT           NOT NULL DEFAULT 0,
    cancel_requested BIGINT           NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    claim_count      BIGINT           NOT NULL DEFAULT 0,
    created_at       BIGINT           NOT NULL,
    updated_at       BIGINT           NOT NULL,
    finished_at      BIGINT,
    applied_at       BIGINT
);

CREATE INDEX jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_by_queue ON jobs (status, priority DESC, created_at, id);

CREATE TABLE subtasks (
    rowid            BIGINT  GENERATED ALWAYS AS IDENTITY,
    id               TEXT    PRIMARY KEY NOT NULL,
    job_id           TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    ordinal          BIGINT  NOT NULL,
    path             TEXT    NOT NULL,
    instruction      TEXT    NOT NULL,
    complexity       TEXT    NOT NULL,
    error_cost       TEXT    NOT NULL,
    language         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    start_tier       TEXT    NOT NULL,
    route_reason     TEXT    NOT NULL,
    original_sha256  TEXT    NOT NULL,
    original_content TEXT,
    current_tier     TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    reason           TEXT    NOT NULL DEFAULT '',
    accepted_content TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

CREATE INDEX subtasks_by_job ON subtasks (job_id, ordinal, rowid);

CREATE TABLE attempts (
    rowid              BIGINT           GENERATED ALWAYS AS IDENTITY,
    id                 TEXT             PRIMARY KEY NOT NULL,
    job_id             TEXT             NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    subtask_id         TEXT             REFERENCES subtasks (id) ON DELETE CASCADE,
    role               TEXT             NOT NULL,
    tier               TEXT             NOT NULL,
    model              TEXT             NOT NULL,
    effort             TEXT,
    ordinal            BIGINT           NOT NULL,
    request_sha256     TEXT             NOT NULL,
    batch_id           TEXT,
    outcome            TEXT             NOT NULL,
    failure            TEXT,
    error              TEXT,
    response_json      TEXT,
    change_json        TEXT,
    input_tokens       BIGINT           NOT NULL DEFAULT 0,
    output_tokens      BIGINT           NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT           NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT           NOT NULL DEFAULT 0,
    cost_usd           DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_ms         BIGINT           NOT NULL DEFAULT 0,
    started_at         BIGINT           NOT NULL,
    finished_at        BIGINT
);

CREATE INDEX attempts_by_job ON attempts (job_id, started_at, rowid);
CREATE INDEX attempts_by_subtask ON attempts (subtask_id);
CREATE INDEX attempts_by_role ON attempts (role, started_at);

CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     TEXT   NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    subtask_id TEXT,
    kind       TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    data_json  TEXT   NOT NULL,
    at         BIGINT NOT NULL
);

CREATE INDEX events_by_job ON events (job_id, seq);
