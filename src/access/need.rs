//! Whose need of which project's room a task's change may end, and whose it renews (slice A).
