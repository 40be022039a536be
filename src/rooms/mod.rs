//! Rooms (issue 11): the pure parts. Which access each DocSpace room type allows, the settings'
//! enums, and the title of a created room. No I/O here.

pub mod access;

pub use access::{RoomAccess, RoomType, RoomsMode, TitleTemplate, allowed};
