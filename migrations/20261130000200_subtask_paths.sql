-- Issue 16: the path of rungs adaptive routing chose for a subtask (the
-- cascade climbs these rungs and no others), with the estimate it was
-- chosen on. A subtask without a row climbs every rung from its start.
CREATE TABLE subtask_paths (
    subtask_id    TEXT    PRIMARY KEY NOT NULL REFERENCES subtasks (id) ON DELETE CASCADE,
    -- JSON array of rung names, cheapest first.
    path          TEXT    NOT NULL,
    -- Expected solved share and cost per subtask of the path, when estimated.
    solved_share  REAL,
    cost_usd      REAL,
    -- 1 when the path was sampled to explore (Thompson sampling).
    explored      INTEGER NOT NULL DEFAULT 0,
    reason        TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
