-- Issue 14 "A status page for the operator": its sign-in sessions, kept in the store so that every
-- replica behind one load balancer knows them and a restart signs nobody out. Times are
-- milliseconds since the Unix epoch.

-- The cookie's session id is never stored: id_hash = hex(SHA-256(admin.token || 0x00 || id)), so a
-- reader of the database cannot forge a cookie, and changing admin.token ends every session.
CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    -- 32 random bytes, hex: the session's CSRF token (useless without the cookie).
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- The status page's "done in the last 24 hours" reads jobs_done_updated (migration 0005):
-- a range over recently finished jobs, never a scan of every done job.
