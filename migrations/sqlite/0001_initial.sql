-- Times are milliseconds since the Unix epoch.

-- One row per webhook name: its secret (stored once, never overwritten) and, when it was made by
-- `webhooks create`, what Asana knows it by.
CREATE TABLE webhooks (
    name TEXT PRIMARY KEY NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_delivery_at INTEGER,
    webhook_gid TEXT,
    project_gid TEXT,
    target TEXT,
    registered_at INTEGER
);

-- Registration windows opened by `webhooks create`: a handshake is accepted only inside one.
CREATE TABLE pending_registrations (
    name TEXT PRIMARY KEY NOT NULL,
    opened_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- One job per event: redeliveries of the same event hit this constraint.
    dedupe_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    task_gid TEXT NOT NULL,
    event_kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    outcome TEXT,
    email TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX jobs_pending_due ON jobs (run_at) WHERE status = 'pending';
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_status ON jobs (status, id);

-- One row per email this service invited (or is inviting): the exactly-once guarantee.
CREATE TABLE invitations (
    email TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'sent')),
    job_id INTEGER NOT NULL,
    task_gid TEXT NOT NULL,
    invite_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
