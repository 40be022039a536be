//! Access follows the work (issue 13): the pure rules behind taking back room access. A person
//! needs a project's room while they are the assignee of an incomplete task of that project
//! ([`need`]); once they have not needed it for the grace period, the access goes only if the
//! bridge granted it and the room's members show it unchanged ([`removal`]). The store and the
//! revoke job (`worker::revoke`) apply these; `docs/design/revocation.md` has the whole design.

pub mod need;
pub mod removal;
