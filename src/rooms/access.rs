//! DocSpace 3.7's room roles for users, as the bridge's settings name them, and the title a
//! created room gets.

use std::fmt;

/// `rooms.mode`: whether assignees get room access, and whether missing rooms are created.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum RoomsMode {
    /// Portal invitations only.
    Off,
    /// Assignees also get access to the rooms linked to their task's known projects.
    Linked,
    /// Like `Linked`, and a known project without a room gets one.
    Auto,
}

/// DocSpace's FileShare for a room member, sent as its integer (never the name: DocSpace reads an
/// unknown name as 0, which removes the member).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantNames,
    strum::FromRepr,
    strum::EnumIter,
)]
#[strum(ascii_case_insensitive)]
#[repr(i64)]
pub enum RoomAccess {
    Editing = 10,
    Review = 5,
    Comment = 6,
    Read = 2,
    FillForms = 7,
    ContentCreator = 11,
    RoomManager = 9,
}

impl RoomAccess {
    /// The FileShare integer DocSpace expects.
    pub fn as_int(self) -> i64 {
        self as i64
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// DocSpace's RoomType, sent as its integer.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantNames,
    strum::FromRepr,
    strum::EnumIter,
)]
#[strum(ascii_case_insensitive)]
#[repr(i64)]
pub enum RoomType {
    Collaboration = 2,
    Custom = 5,
    Public = 6,
    FillingForms = 1,
    VirtualData = 8,
    /// An AI room: only ever linked, never created by the bridge.
    Ai = 9,
}

impl RoomType {
    /// The RoomType integer DocSpace expects.
    pub fn as_int(self) -> i64 {
        self as i64
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether `rooms.room_type` may name it (the bridge does not create AI rooms).
    pub fn creatable(self) -> bool {
        self != RoomType::Ai
    }

    /// Whether DocSpace lets a user member of a room of this type have `access`.
    pub fn allows(self, access: RoomAccess) -> bool {
        allowed(self).contains(&access)
    }

    /// The types `rooms.room_type` accepts, in the order the settings list them.
    pub const CREATABLE: [RoomType; 5] = [
        RoomType::Collaboration,
        RoomType::Custom,
        RoomType::Public,
        RoomType::FillingForms,
        RoomType::VirtualData,
    ];
}

/// The access a user member may have in a room of `room_type` (DocSpace 3.7; `None`, 0, is
/// allowed everywhere and is never granted).
pub fn allowed(room_type: RoomType) -> &'static [RoomAccess] {
    use RoomAccess::*;
    match room_type {
        RoomType::Custom => &[RoomManager, ContentCreator, Editing, Review, Comment, Read],
        RoomType::Collaboration => &[RoomManager, ContentCreator, Editing, Read],
        RoomType::Public => &[RoomManager, ContentCreator],
        RoomType::FillingForms => &[RoomManager, ContentCreator, FillForms],
        RoomType::VirtualData => &[RoomManager, ContentCreator, Editing, Read, FillForms],
        RoomType::Ai => &[RoomManager, ContentCreator, Read],
    }
}

/// "a, b or c".
pub fn or_list<T: fmt::Display>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(ToString::to_string).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// DocSpace's longest room title, in UTF-16 code units (.NET's `MaxLength` counts those).
pub const MAX_TITLE_UTF16: usize = 170;

const PLACEHOLDER: &str = "{project}";

/// `rooms.title`: a created room's title, where `{project}` is the Asana project's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TitleTemplate(String);

/// Why a `rooms.title` is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    #[error("must not be empty")]
    Empty,
    #[error("unknown placeholder {0}; only {{project}} is replaced")]
    UnknownPlaceholder(String),
}

impl TitleTemplate {
    pub fn parse(template: &str) -> Result<TitleTemplate, TitleError> {
        if template.trim().is_empty() {
            return Err(TitleError::Empty);
        }
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let after = &rest[open..];
            if let Some(next) = after.strip_prefix(PLACEHOLDER) {
                rest = next;
                continue;
            }
            let end = after.find('}').map_or(after.len(), |close| close + 1);
            return Err(TitleError::UnknownPlaceholder(after[..end].to_string()));
        }
        Ok(TitleTemplate(template.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The title for project `gid` named `project_name` (an empty name reads `Asana project
    /// <gid>`): trimmed, and cut on a character boundary to DocSpace's 170 UTF-16 units.
    pub fn render(&self, project_name: &str, gid: &str) -> String {
        let name = project_name.trim();
        let name = if name.is_empty() {
            format!("Asana project {gid}")
        } else {
            name.to_string()
        };
        let title = self.0.replace(PLACEHOLDER, &name);
        let title = title.trim();
        let mut units = 0;
        let mut end = title.len();
        for (index, c) in title.char_indices() {
            if units + c.len_utf16() > MAX_TITLE_UTF16 {
                end = index;
                break;
            }
            units += c.len_utf16();
        }
        title[..end].trim_end().to_string()
    }
}

impl Default for TitleTemplate {
    fn default() -> TitleTemplate {
        TitleTemplate(PLACEHOLDER.to_string())
    }
}

impl fmt::Display for TitleTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use strum::IntoEnumIterator;

    #[test]
    fn access_integers_are_the_specs_file_share_values() {
        let ints: Vec<(RoomAccess, i64)> = RoomAccess::iter().map(|a| (a, a.as_int())).collect();
        assert_eq!(
            ints,
            vec![
                (RoomAccess::Editing, 10),
                (RoomAccess::Review, 5),
                (RoomAccess::Comment, 6),
                (RoomAccess::Read, 2),
                (RoomAccess::FillForms, 7),
                (RoomAccess::ContentCreator, 11),
                (RoomAccess::RoomManager, 9),
            ]
        );
        for access in RoomAccess::iter() {
            assert_eq!(RoomAccess::from_repr(access.as_int()), Some(access));
        }
        assert_eq!(RoomAccess::from_repr(0), None);
    }

    #[test]
    fn room_type_integers_are_the_specs_room_type_values() {
        let ints: Vec<(RoomType, i64)> = RoomType::iter().map(|t| (t, t.as_int())).collect();
        assert_eq!(
            ints,
            vec![
                (RoomType::Collaboration, 2),
                (RoomType::Custom, 5),
                (RoomType::Public, 6),
                (RoomType::FillingForms, 1),
                (RoomType::VirtualData, 8),
                (RoomType::Ai, 9),
            ]
        );
        assert!(RoomType::CREATABLE.iter().all(|t| t.creatable()));
        assert!(!RoomType::Ai.creatable());
    }

    #[test]
    fn names_parse_case_insensitively_and_unknown_names_do_not() {
        assert_eq!(RoomsMode::from_str("AUTO"), Ok(RoomsMode::Auto));
        assert_eq!(RoomsMode::Linked.to_string(), "linked");
        assert!(RoomsMode::from_str("sometimes").is_err());
        assert_eq!(
            RoomAccess::from_str("contentcreator"),
            Ok(RoomAccess::ContentCreator)
        );
        assert_eq!(RoomAccess::RoomManager.to_string(), "RoomManager");
        assert!(RoomAccess::from_str("Write").is_err());
        assert_eq!(RoomType::from_str("virtualdata"), Ok(RoomType::VirtualData));
        assert!(RoomType::from_str("Private").is_err());
    }

    /// The matrix, every type against every access.
    #[test]
    fn the_matrix_is_docspace_3_7s_for_users() {
        use RoomAccess::*;
        let table: [(RoomType, [bool; 7]); 6] = [
            //                         Editing Review Comment Read  FillForms CC    RoomManager
            (
                RoomType::Custom,
                [true, true, true, true, false, true, true],
            ),
            (
                RoomType::Collaboration,
                [true, false, false, true, false, true, true],
            ),
            (
                RoomType::Public,
                [false, false, false, false, false, true, true],
            ),
            (
                RoomType::FillingForms,
                [false, false, false, false, true, true, true],
            ),
            (
                RoomType::VirtualData,
                [true, false, false, true, true, true, true],
            ),
            (RoomType::Ai, [false, false, false, true, false, true, true]),
        ];
        let order = [
            Editing,
            Review,
            Comment,
            Read,
            FillForms,
            ContentCreator,
            RoomManager,
        ];
        for (room_type, row) in table {
            for (access, expected) in order.iter().zip(row) {
                assert_eq!(
                    room_type.allows(*access),
                    expected,
                    "{access} in {room_type}"
                );
            }
        }
    }

    #[test]
    fn or_list_joins_like_a_sentence() {
        assert_eq!(or_list::<&str>(&[]), "");
        assert_eq!(or_list(&["a"]), "a");
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn title_templates_accept_only_the_project_placeholder() {
        assert_eq!(TitleTemplate::parse("  "), Err(TitleError::Empty));
        assert_eq!(
            TitleTemplate::parse("Asana: {name}"),
            Err(TitleError::UnknownPlaceholder("{name}".into()))
        );
        assert_eq!(
            TitleTemplate::parse("{project"),
            Err(TitleError::UnknownPlaceholder("{project".into()))
        );
        assert!(TitleTemplate::parse("Asana: {project} ({project})").is_ok());
        assert!(TitleTemplate::parse("no placeholder").is_ok());
    }

    #[test]
    fn titles_render_the_name_or_the_gid() {
        let template = TitleTemplate::parse("Asana: {project} ").unwrap();
        assert_eq!(template.render(" Website ", "1"), "Asana: Website");
        assert_eq!(
            TitleTemplate::default().render("  ", "1200000000000100"),
            "Asana project 1200000000000100"
        );
    }

    #[test]
    fn titles_are_cut_to_170_utf16_units_on_a_char_boundary() {
        let long = "x".repeat(300);
        assert_eq!(TitleTemplate::default().render(&long, "1").len(), 170);
        // 169 units, then an emoji (2 units) that would end at 171: cut before it.
        let name = format!("{}😀tail", "a".repeat(169));
        let title = TitleTemplate::default().render(&name, "1");
        assert_eq!(title, "a".repeat(169));
        // 168 units and the emoji fit exactly.
        let name = format!("{}😀tail", "a".repeat(168));
        let title = TitleTemplate::default().render(&name, "1");
        assert_eq!(title.encode_utf16().count(), 170);
        assert!(title.ends_with('😀'));
        // A cut that lands after a space is trimmed again.
        let name = format!("{} tail", "b".repeat(169));
        assert_eq!(TitleTemplate::default().render(&name, "1"), "b".repeat(169));
    }
}
