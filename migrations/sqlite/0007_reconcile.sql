-- Issue 12 "Never miss an assignment": reconcile passes, webhooks the service registers again, and
-- projects found through a workspace webhook. Adds columns and one table; rebuilds nothing. Times
-- are milliseconds since the Unix epoch.

-- Each watched project's reconcile state. The claim, cursor and due time change together.
-- Start of the last complete pass; NULL: none yet (the first pass reads every incomplete task).
ALTER TABLE projects ADD COLUMN reconcile_cursor INTEGER;
-- An earlier start asked for by a webhook repair (the catch-up); cleared by the pass that honours it.
ALTER TABLE projects ADD COLUMN reconcile_since INTEGER;
-- When the next pass is due; NULL: at once while passes are on.
ALTER TABLE projects ADD COLUMN reconcile_due_at INTEGER;
-- 'service:<owner>' or 'command:<pid>-<random>' of the one pass running, until claimed_until.
ALTER TABLE projects ADD COLUMN reconcile_claim TEXT;
ALTER TABLE projects ADD COLUMN reconcile_claimed_until INTEGER;
-- When the last pass ended, either way, and why the last one failed.
ALTER TABLE projects ADD COLUMN reconcile_passed_at INTEGER;
ALTER TABLE projects ADD COLUMN reconcile_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN reconcile_last_error TEXT;
-- The workspace whose webhook reported the project (NULL: known otherwise).
ALTER TABLE projects ADD COLUMN discovered_via TEXT;
CREATE INDEX projects_reconcile_due ON projects (reconcile_due_at);

-- What a webhook watches: a project (every webhook so far) or a workspace (new projects only).
ALTER TABLE webhooks ADD COLUMN resource_type TEXT NOT NULL DEFAULT 'project'
    CHECK (resource_type IN ('project', 'workspace'));
ALTER TABLE webhooks ADD COLUMN workspace_gid TEXT;

-- The assignee the event, backfill or pass that queued a job named (NULL: it named none).
ALTER TABLE jobs ADD COLUMN assignee_gid TEXT;
UPDATE jobs SET assignee_gid = substr(dedupe_key, length('backfill:' || task_gid || ':') + 1)
    WHERE event_kind = 'backfill' AND dedupe_key LIKE 'backfill:%';
CREATE INDEX jobs_task_assignee ON jobs (task_gid, assignee_gid);

-- A webhook the watcher found deleted or inactive at Asana, until a new one replaces it: one per
-- watched resource, found by every replica, claimed by one.
CREATE TABLE webhook_repairs (
    resource_gid TEXT PRIMARY KEY NOT NULL,
    resource_type TEXT NOT NULL CHECK (resource_type IN ('project', 'workspace')),
    old_name TEXT NOT NULL,
    old_webhook_gid TEXT NOT NULL,
    -- 'deleted at Asana (404)' or 'inactive at Asana: <last failure>'.
    found TEXT NOT NULL,
    -- The old webhook's last verified delivery (else its registration): where the catch-up starts.
    since INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    claim_token TEXT,
    claimed_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Webhooks the service registered in place of another, for `webhooks list` and the status page.
ALTER TABLE webhooks ADD COLUMN replaced_name TEXT;
