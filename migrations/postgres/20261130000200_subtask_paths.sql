-- As ../20261130000200_subtask_paths.sql: the path of rungs adaptive routing
-- chose for a subtask, with the estimate it was chosen on.
CREATE TABLE subtask_paths (
    subtask_id    TEXT             PRIMARY KEY NOT NULL REFERENCES subtasks (id) ON DELETE CASCADE,
    path          TEXT             NOT NULL,
    solved_share  DOUBLE PRECISION,
    cost_usd      DOUBLE PRECISION,
    explored      BIGINT           NOT NULL DEFAULT 0,
    reason        TEXT             NOT NULL DEFAULT '',
    created_at    BIGINT           NOT NULL
);
