//! Whether a revoke job may remove an access, from the ledger and the room's members (slice C).
//!
//! The decision is made from *our* ledger row, never from "is in the room but has no task": access
//! someone gave by hand has no `granted` row, and access someone changed by hand no longer matches
//! the row. It is made again from a fresh members read on every attempt, which is what makes the
//! removal exactly once across crashes: an access that is gone after this revocation reserved its
//! removal was removed by our own earlier call.

use crate::domain::{DocSpaceUserId, Email};
use crate::rooms::RoomAccess;
use crate::store::GrantState;
use crate::upstream::docspace::Member;

/// DocSpace's `subjectType` of a person (groups and links are other types).
const SUBJECT_USER: i64 = 0;

/// What the grants ledger says about the access a revocation would take back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFacts {
    pub email: Email,
    pub state: GrantState,
    /// The FileShare integer the bridge sent (or saw, for `had_access`).
    pub access: i64,
    /// The DocSpace account the bridge shared the room with.
    pub docspace_user_id: DocSpaceUserId,
}

/// What a revoke job does with an access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The bridge granted it and the room shows it unchanged: remove it, by id.
    Remove,
    /// The ledger does not say the bridge granted it.
    KeepNotGranted,
    /// The room shows something other than what the bridge granted (the text says what).
    KeepChangedByHand(String),
    /// Not in the room, and this revocation never asked DocSpace: someone removed it by hand.
    Left,
    /// Not in the room after this revocation reserved its removal: our earlier call landed.
    AlreadyRemoved,
}

/// Decides a removal. `members` are the room's entries matching the person's email (all pages of
/// a `filterValue` search, which is fuzzy); `reserved_before`: this revocation reserved a removal
/// in an earlier attempt (`decided_at` set), so DocSpace may have been asked already.
pub fn decide_removal(grant: &GrantFacts, reserved_before: bool, members: &[Member]) -> Removal {
    if grant.state != GrantState::Granted {
        return Removal::KeepNotGranted;
    }
    let people: Vec<&Member> = members.iter().filter(|m| is_person(m)).collect();
    let ours = people.iter().find(|m| {
        m.shared_to_user
            .as_ref()
            .is_some_and(|u| u.id.as_ref() == Some(&grant.docspace_user_id))
    });
    if let Some(member) = ours {
        if member.is_owner {
            return Removal::KeepChangedByHand("room owner".into());
        }
        if member.access != grant.access {
            return Removal::KeepChangedByHand(format!(
                "{} now, the bridge granted {}",
                access_name(member.access),
                access_name(grant.access)
            ));
        }
        if !member.can_revoke {
            return Removal::KeepChangedByHand("DocSpace says it cannot be revoked".into());
        }
        return Removal::Remove;
    }
    if people.iter().any(|m| m.is(None, grant.email.as_str())) {
        return Removal::KeepChangedByHand("the email belongs to another DocSpace account".into());
    }
    if reserved_before {
        Removal::AlreadyRemoved
    } else {
        Removal::Left
    }
}

/// A person's entry (groups and links have no `sharedToUser`, or another subject type).
fn is_person(member: &Member) -> bool {
    member.shared_to_user.is_some() && member.subject_type.is_none_or(|t| t == SUBJECT_USER)
}

/// `Editing` for 10; a FileShare the bridge never grants by its number.
fn access_name(access: i64) -> String {
    RoomAccess::from_repr(access).map_or_else(|| format!("access {access}"), |a| a.as_str().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::docspace::MemberUser;

    const ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const OTHER_ID: &str = "11111111-2222-3333-4444-555555555555";
    const EDITING: i64 = 10;
    const READ: i64 = 2;
    const ROOM_MANAGER: i64 = 9;

    fn grant(state: GrantState, access: i64) -> GrantFacts {
        GrantFacts {
            email: "bob@example.com".parse().unwrap(),
            state,
            access,
            docspace_user_id: ID.parse().unwrap(),
        }
    }

    fn member(id: &str, email: &str, access: i64) -> Member {
        Member {
            access,
            shared_to_user: Some(MemberUser {
                id: id.parse().ok(),
                email: Some(email.into()),
                display_name: None,
            }),
            subject_type: Some(SUBJECT_USER),
            is_owner: false,
            can_revoke: true,
        }
    }

    fn group(access: i64) -> Member {
        Member {
            access,
            shared_to_user: None,
            subject_type: Some(2),
            is_owner: false,
            can_revoke: true,
        }
    }

    #[test]
    fn decides_each_case_from_the_ledger_and_the_members() {
        let ours = member(ID, "bob@example.com", EDITING);
        let owner = Member {
            is_owner: true,
            can_revoke: false,
            ..ours.clone()
        };
        let fixed = Member {
            can_revoke: false,
            ..ours.clone()
        };
        let same_email_other_account = member(OTHER_ID, "Bob@Example.com", EDITING);
        // The filter is fuzzy: joebob@ matches bob@, and is not Bob.
        let fuzzy = member(OTHER_ID, "joebob@example.com", EDITING);
        let cases: Vec<(&str, GrantFacts, bool, Vec<Member>, Removal)> = vec![
            (
                "granted, unchanged",
                grant(GrantState::Granted, EDITING),
                false,
                vec![ours.clone()],
                Removal::Remove,
            ),
            (
                "our RoomManager, unchanged",
                grant(GrantState::Granted, ROOM_MANAGER),
                false,
                vec![member(ID, "bob@example.com", ROOM_MANAGER)],
                Removal::Remove,
            ),
            (
                "found in the room, never ours",
                grant(GrantState::HadAccess, EDITING),
                false,
                vec![ours.clone()],
                Removal::KeepNotGranted,
            ),
            (
                "still being granted",
                grant(GrantState::Sending, EDITING),
                false,
                vec![ours.clone()],
                Removal::KeepNotGranted,
            ),
            (
                "room owner",
                grant(GrantState::Granted, EDITING),
                false,
                vec![owner],
                Removal::KeepChangedByHand("room owner".into()),
            ),
            (
                "lowered by hand",
                grant(GrantState::Granted, EDITING),
                false,
                vec![member(ID, "bob@example.com", READ)],
                Removal::KeepChangedByHand("Read now, the bridge granted Editing".into()),
            ),
            (
                "raised to RoomManager by hand",
                grant(GrantState::Granted, EDITING),
                false,
                vec![member(ID, "bob@example.com", ROOM_MANAGER)],
                Removal::KeepChangedByHand("RoomManager now, the bridge granted Editing".into()),
            ),
            (
                "an access the bridge never grants",
                grant(GrantState::Granted, EDITING),
                false,
                vec![member(ID, "bob@example.com", 1)],
                Removal::KeepChangedByHand("access 1 now, the bridge granted Editing".into()),
            ),
            (
                "DocSpace says it cannot be revoked",
                grant(GrantState::Granted, EDITING),
                false,
                vec![fixed],
                Removal::KeepChangedByHand("DocSpace says it cannot be revoked".into()),
            ),
            (
                "the email is another account's now",
                grant(GrantState::Granted, EDITING),
                false,
                vec![same_email_other_account],
                Removal::KeepChangedByHand("the email belongs to another DocSpace account".into()),
            ),
            (
                "absent, never asked: removed by hand",
                grant(GrantState::Granted, EDITING),
                false,
                vec![fuzzy.clone()],
                Removal::Left,
            ),
            (
                "absent after our reservation: our call landed",
                grant(GrantState::Granted, EDITING),
                true,
                vec![fuzzy],
                Removal::AlreadyRemoved,
            ),
            (
                "groups are ignored",
                grant(GrantState::Granted, EDITING),
                true,
                vec![group(EDITING)],
                Removal::AlreadyRemoved,
            ),
            (
                "present again after our reservation: removed again",
                grant(GrantState::Granted, EDITING),
                true,
                vec![group(READ), ours],
                Removal::Remove,
            ),
        ];
        for (name, grant, reserved_before, members, expected) in cases {
            assert_eq!(
                decide_removal(&grant, reserved_before, &members),
                expected,
                "{name}"
            );
        }
    }
}
