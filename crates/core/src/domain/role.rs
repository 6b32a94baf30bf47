//! What a caller may do, from least to most: a `viewer` reads sessions,
//! streams and usage; a `member` also chats, runs jobs and moves files; an
//! `admin` also manages its tenant (keys, members, budgets, schedules,
//! trust rules); the server's `owner` manages every tenant and the server.

use std::fmt;

/// A caller's role. Ordered: a role may do all that the roles below it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    /// The stored name of a role (`viewer`, `member`, `admin`, `owner`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// The role named `name`; `None` for a name that is none of the four.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role a stored name grants. A name this server does not know
    /// grants the least (a row written by a newer version reads safely).
    pub fn from_stored(name: &str) -> Role {
        Role::parse(name).unwrap_or(Role::Viewer)
    }

    /// The roles' names for error messages: "viewer, member, admin or owner".
    pub fn names() -> &'static str {
        "viewer, member, admin or owner"
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip_by_name() {
        assert!(Role::Viewer < Role::Member && Role::Member < Role::Admin);
        assert!(Role::Admin < Role::Owner);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::from_stored("superuser"), Role::Viewer);
        let listed: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(Role::names(), "viewer, member, admin or owner");
        assert_eq!(listed, ["viewer", "member", "admin", "owner"]);
    }
}
