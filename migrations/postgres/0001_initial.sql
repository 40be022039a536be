-- Times are milliseconds since the Unix epoch.

-- One row per webhook name: its secret (stored once, never overwritten) and, when it was made by
-- `webhooks create`, what Asana knows it by.
CREATE TABLE webhooks (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_delivery_at BIGINT,
    webhook_gid TEXT,
    project_gid TEXT,
    target TEXT,
    registered_at BIGINT
);

-- Registration windows opened by `webhooks create`: a handshake is accepted only inside one.
CREATE TABLE pending_registrations (
    name TEXT PRIMARY KEY,
    opened_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    -- One job per event: redeliveries of the same event hit this constraint.
    dedupe_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    task_gid TEXT NOT NULL,
    event_kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    outcome TEXT,
    email TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX jobs_pending_due ON jobs (run_at) WHERE status = 'pending';
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_status ON jobs (status, id);

-- One row per email this service invited (or is inviting): the exactly-once guarantee.
CREATE TABLE invitations (
    email TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('sending', 'sent')),
    job_id BIGINT NOT NULL,
    task_gid TEXT NOT NULL,
    invite_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
