//! Whether a revoke job may remove an access, from the ledger and the room's members (slice C).
