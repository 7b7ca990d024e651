-- Cluster-wide model-call limits (see docs/cluster.md). Daemons sharing a
-- store count their model calls here as well as in memory.
--
-- call_slots: one row per slot of a scope ('all' for limits.max_concurrency,
-- 'tier:NAME' for limits.per_tier_concurrency). A daemon holds a slot while
-- one of its calls is in flight: holder is its slot-lease id, expires_at_ms
-- (unix milliseconds) is renewed while it runs, so a killed daemon's slots
-- free themselves. Claimed and released with compare-and-set, like jobs.
CREATE TABLE call_slots (
    scope TEXT NOT NULL,
    slot BIGINT NOT NULL,
    holder TEXT,
    expires_at_ms BIGINT,
    PRIMARY KEY (scope, slot)
);

CREATE INDEX call_slots_by_holder ON call_slots (holder);

-- tier_pauses: a 429/529 seen by one daemon pauses the tier for every daemon
-- until until_ms (unix milliseconds; the provider's retry-after). A later
-- pause only ever extends it.
CREATE TABLE tier_pauses (
    tier TEXT PRIMARY KEY NOT NULL,
    until_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL
);
