-- A registration is bound to the `webhooks create` that opened it: the target URL it gives Asana
-- carries a one-time nonce, and the window keeps the nonce's SHA-256 (hex). Windows opened before
-- this migration have no nonce and admit no handshake.
ALTER TABLE pending_registrations ADD COLUMN nonce_hash TEXT NOT NULL DEFAULT '';

-- A secret a handshake stored inside a window is unusable until `webhooks create` records the
-- registration complete (both columns NULL again), and dead after `unconfirmed_until`.
ALTER TABLE webhooks ADD COLUMN registration_nonce_hash TEXT;
ALTER TABLE webhooks ADD COLUMN unconfirmed_until BIGINT;
