-- The ledger of model calls: one row per finished provider call, keyed by the
-- SHA-256 of its request. A resumed job replays a finished call from here
-- instead of sending it again; costs are summed from here, so a call is paid
-- for and counted exactly once.
CREATE TABLE model_calls (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id             TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt_id         TEXT NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    turn               INTEGER NOT NULL,
    request_sha256     TEXT NOT NULL,
    role               TEXT NOT NULL,
    tier               TEXT NOT NULL,
    model              TEXT NOT NULL,
    response_json      TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_usd           REAL NOT NULL,
    latency_ms         INTEGER NOT NULL,
    batch              INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL
);
CREATE INDEX model_calls_job_request ON model_calls (job_id, request_sha256);
CREATE INDEX model_calls_attempt ON model_calls (attempt_id);
