-- cadre's initial schema: jobs (with their queue lease), subtasks, attempts, events.
--
-- Conventions: ids are TEXT (hyphenated uuid v7), timestamps are INTEGER unix seconds named
-- `*_at` (milliseconds where named `*_ms`), enums are the `as_str()` strings of cadre-types,
-- JSON is TEXT in columns named `*_json`. Never edit this file once applied: sqlx verifies
-- checksums. Add a new `<timestamp>_<name>.sql` instead.

CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY NOT NULL,
    instruction      TEXT    NOT NULL,
    workspace        TEXT    NOT NULL,
    options_json     TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    budget_usd       REAL,
    status           TEXT    NOT NULL,
    reason           TEXT    NOT NULL DEFAULT '',
    plan_json        TEXT,
    report_json      TEXT,
    patch            TEXT,
    wall_ms          INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    -- The queue lease: which runner works on the job and until when. A lease that is not
    -- renewed (heartbeat) by `lease_expires_at` may be claimed by another runner.
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    -- How many times a runner claimed the job. A non-terminal job that was never claimed is
    -- run in the foreground (`cadre run`) and is never taken over by the daemon.
    claim_count      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    applied_at       INTEGER
);

-- list_jobs: newest first with a (created_at, id) cursor.
CREATE INDEX jobs_by_created ON jobs (created_at DESC, id DESC);
-- claim_job: candidates by status, best first.
CREATE INDEX jobs_by_queue ON jobs (status, priority DESC, created_at, id);

CREATE TABLE subtasks (
    id               TEXT    PRIMARY KEY NOT NULL,
    job_id           TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    ordinal          INTEGER NOT NULL,
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
    attempts         INTEGER NOT NULL DEFAULT 0,
    reason           TEXT    NOT NULL DEFAULT '',
    accepted_content TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- list_subtasks: a job's subtasks by ordinal.
CREATE INDEX subtasks_by_job ON subtasks (job_id, ordinal);

CREATE TABLE attempts (
    id                 TEXT    PRIMARY KEY NOT NULL,
    job_id             TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    subtask_id         TEXT    REFERENCES subtasks (id) ON DELETE CASCADE,
    role               TEXT    NOT NULL,
    tier               TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    effort             TEXT,
    ordinal            INTEGER NOT NULL,
    request_sha256     TEXT    NOT NULL,
    batch_id           TEXT,
    outcome            TEXT    NOT NULL,
    failure            TEXT,
    error              TEXT,
    response_json      TEXT,
    change_json        TEXT,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL    NOT NULL DEFAULT 0,
    latency_ms         INTEGER NOT NULL DEFAULT 0,
    started_at         INTEGER NOT NULL,
    finished_at        INTEGER
);

-- list_attempts / interrupt_running_attempts: a job's attempts in start (insertion) order.
CREATE INDEX attempts_by_job ON attempts (job_id, started_at);
CREATE INDEX attempts_by_subtask ON attempts (subtask_id);
-- attempt_stats: worker attempts since a time.
CREATE INDEX attempts_by_role ON attempts (role, started_at);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- No foreign key: an event may name a subtask before (or without) its row existing.
    subtask_id TEXT,
    kind       TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    data_json  TEXT    NOT NULL,
    at         INTEGER NOT NULL
);

-- list_events: a job's events after a seq.
CREATE INDEX events_by_job ON events (job_id, seq);
