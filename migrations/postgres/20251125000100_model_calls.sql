-- The ledger of model calls (as ../20251125000100_model_calls.sql): one row per finished
-- provider call, keyed by the SHA-256 of its request.
CREATE TABLE model_calls (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id             TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt_id         TEXT NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    turn               BIGINT NOT NULL,
    request_sha256     TEXT NOT NULL,
    role               TEXT NOT NULL,
    tier               TEXT NOT NULL,
    model              TEXT NOT NULL,
    response_json      TEXT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    cost_usd           DOUBLE PRECISION NOT NULL,
    latency_ms         BIGINT NOT NULL,
    batch              BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL
);
CREATE INDEX model_calls_job_request ON model_calls (job_id, request_sha256);
CREATE INDEX model_calls_attempt ON model_calls (attempt_id);
