//! Rooms (issue 11): the pure parts. Which access each DocSpace room type allows, the settings'
//! enums, and the title of a created room. No I/O here.

pub mod access;

pub use access::{RoomAccess, RoomType, RoomsMode, TitleTemplate, allowed};

/// ` ("Website")` after a project gid in a message, or nothing without a name.
pub fn named(name: Option<&str>) -> String {
    name.map(|n| format!(" ({n:?})")).unwrap_or_default()
}
