-- Issue 11 "Rooms": projects, their DocSpace rooms, the one creator of a project's room, the
-- grants ledger, and the tasks jobs have read. Times are milliseconds since the Unix epoch;
-- booleans are 0/1. Issues 12 and 13 add columns and tables to these, nothing is rebuilt.

-- Projects the bridge has heard of by name; issue 12 hangs its reconcile cursor here.
CREATE TABLE projects (
    gid TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO projects (gid, created_at, updated_at)
    SELECT project_gid, MIN(created_at), MIN(created_at) FROM webhooks
    WHERE project_gid IS NOT NULL GROUP BY project_gid;
CREATE INDEX webhooks_project ON webhooks (project_gid) WHERE project_gid IS NOT NULL;

-- At most one room per project (the key), a room serves one project (UNIQUE room_id).
CREATE TABLE project_rooms (
    project_gid TEXT PRIMARY KEY NOT NULL REFERENCES projects (gid),
    room_id INTEGER NOT NULL UNIQUE,
    room_title TEXT NOT NULL,
    room_type INTEGER NOT NULL,
    -- The FileShare integer this project's assignees get.
    access INTEGER NOT NULL,
    -- created: tagged asana-project:<gid> (made or adopted by the bridge).
    how TEXT NOT NULL CHECK (how IN ('linked', 'created')),
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'gone')),
    gone_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The one creator of a project's room at a time, across jobs, commands and replicas.
CREATE TABLE room_creations (
    project_gid TEXT PRIMARY KEY NOT NULL,
    -- 'job:<id>' or 'command:<pid>-<random>'.
    claim_token TEXT NOT NULL,
    -- NULL for commands.
    job_id INTEGER,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'failed')),
    -- claimed: until the claim runs out; failed: the end of the cool-down.
    claimed_until INTEGER NOT NULL,
    replacing_room_id INTEGER,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);

-- The grants ledger: one live row per (person, room); history stays.
CREATE TABLE room_grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    room_id INTEGER NOT NULL,
    project_gid TEXT NOT NULL,
    docspace_user_id TEXT NOT NULL,
    -- Sent (sending, granted) or observed (had_access).
    access INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'granted', 'had_access')),
    job_id INTEGER NOT NULL,
    task_gid TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    granted_at INTEGER,
    -- NULL: live. Issue 13 sets it when the access is taken back.
    ended_at INTEGER
);
CREATE UNIQUE INDEX room_grants_live ON room_grants (email, room_id) WHERE ended_at IS NULL;
CREATE INDEX room_grants_room ON room_grants (room_id);
CREATE INDEX room_grants_job ON room_grants (job_id);

-- Every task a job has read.
CREATE TABLE tasks (
    gid TEXT PRIMARY KEY NOT NULL,
    assignee_gid TEXT,
    assignee_email TEXT,
    completed INTEGER NOT NULL,
    parent_gid TEXT,
    read_at INTEGER NOT NULL,
    read_by_job_id INTEGER
);
CREATE TABLE task_projects (
    task_gid TEXT NOT NULL REFERENCES tasks (gid) ON DELETE CASCADE,
    project_gid TEXT NOT NULL,
    -- The task itself, or the ancestor that is in the project.
    via_task_gid TEXT NOT NULL,
    PRIMARY KEY (task_gid, project_gid)
);
CREATE INDEX task_projects_project ON task_projects (project_gid, task_gid);

-- What a job did per room (JSON), for `jobs list`.
ALTER TABLE jobs ADD COLUMN room_results TEXT;
