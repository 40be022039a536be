-- Issue 13 "Access follows the work": what ended a person's need of a project's room, and taking the
-- access back. Adds columns, one table and indexes; rebuilds nothing. Times are milliseconds since
-- the Unix epoch.

-- A task Asana answered 404 for (deleted, or hidden from the token); it counts toward nobody's need.
ALTER TABLE tasks ADD COLUMN deleted_at BIGINT;
-- "Does this person still need this project's room": their open tasks, then those tasks' projects.
CREATE INDEX tasks_open_by_assignee ON tasks (assignee_email) WHERE completed = 0 AND deleted_at IS NULL;

-- How a grant ended: 'revoked' (by the bridge), 'left' (gone from the room when the bridge came to
-- remove it) or 'room_gone'.
ALTER TABLE room_grants ADD COLUMN end_reason TEXT;
-- The revoke job that decided to remove this access and may have asked DocSpace; new grants of the
-- same (person, room) wait until it is settled.
ALTER TABLE room_grants ADD COLUMN revoking_job_id BIGINT;
-- What made the grant, '<event kind> from <source>', kept here because retention deletes done jobs.
ALTER TABLE room_grants ADD COLUMN cause TEXT;
UPDATE room_grants SET cause = (SELECT j.event_kind || ' from ' || j.source FROM jobs j
                                WHERE j.id = room_grants.job_id);
CREATE INDEX room_grants_person_project ON room_grants (email, project_gid) WHERE ended_at IS NULL;

-- The daily need sweep of a watched project; NULL: never swept.
ALTER TABLE projects ADD COLUMN need_swept_at BIGINT;

-- The revocations ledger: one row per (live grant, ended need). A later end of the same grant's
-- need (after it was needed again, or kept) is a new row.
CREATE TABLE room_revocations (
    id BIGSERIAL PRIMARY KEY,
    grant_id BIGINT NOT NULL REFERENCES room_grants (id),
    email TEXT NOT NULL,
    room_id BIGINT NOT NULL,
    project_gid TEXT NOT NULL,
    -- When the person's last open task in the project went (or when a sweep found none).
    need_ended_at BIGINT NOT NULL,
    -- The task whose change ended the need, and how it changed.
    why_task_gid TEXT NOT NULL,
    why TEXT NOT NULL CHECK (why IN ('unassigned', 'reassigned', 'completed', 'removed', 'deleted',
                                     'no_open_task')),
    -- The source of the job that saw it: 'webhook:<name>', 'reconcile', ...
    why_source TEXT,
    -- need_ended_at + access.revoke_grace_secs.
    due_at BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'removing', 'revoked', 'kept_changed_by_hand',
        'kept_not_granted', 'left', 'needed_again', 'room_gone', 'cancelled', 'failed')),
    -- The revoke job (jobs.event_kind = 'revoke').
    job_id BIGINT,
    -- First reservation (state removing): DocSpace may have been asked since.
    decided_at BIGINT,
    -- The access the room's members list showed when deciding.
    seen_access BIGINT,
    done_at BIGINT,
    note TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX room_revocations_open ON room_revocations (grant_id)
    WHERE state IN ('waiting', 'removing');
CREATE INDEX room_revocations_person ON room_revocations (email, project_gid);
CREATE INDEX room_revocations_job ON room_revocations (job_id);
CREATE INDEX room_revocations_time ON room_revocations (updated_at);
