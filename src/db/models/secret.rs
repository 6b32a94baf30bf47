//! Server-wide generated secrets, shared by every instance on one database.

use diesel::prelude::*;

use crate::db::schema::server_secrets;
use crate::db::{DbConnection, DbResult};

/// The secret called `name`, created with `generate` if there is none yet.
pub fn get_or_create(
    conn: &mut DbConnection,
    name: &str,
    generate: impl FnOnce() -> String,
) -> DbResult<String> {
    let existing: Option<String> = server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first(conn)
        .optional()?;
    if let Some(value) = existing {
        return Ok(value);
    }
    let value = generate();
    let inserted = diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(&value),
            server_secrets::created_at.eq(crate::db::now()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(value),
        // Another instance created it first: use theirs.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(server_secrets::table
            .find(name)
            .select(server_secrets::value)
            .first(conn)?),
        Err(e) => Err(e.into()),
    }
}
