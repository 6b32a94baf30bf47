//! API keys: random, prefixed, shown once, stored only as a SHA-256 hash.
//! Keys from `API_KEYS` are synced into the database at every start.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::models::tenant::{self, ApiKey, Tenant};
use crate::db::{self, DbConnection, DbResult};
use crate::domain::role::Role;

/// Prefix of generated keys, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "cca_";
/// Label of keys that come from `API_KEYS`.
const ENV_LABEL: &str = "API_KEYS";

pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `tenant:key` names the tenant; a bare key is a tenant of its own, named
/// after its hash so the name is stable and reveals nothing.
pub fn parse_entry(entry: &str) -> (String, String) {
    match entry.split_once(':') {
        Some((tenant, key)) if is_tenant_name(tenant) && !key.is_empty() => {
            (tenant.to_owned(), key.to_owned())
        }
        _ => (format!("t-{}", &hash_key(entry)[..16]), entry.to_owned()),
    }
}

/// Tenant names: 1–64 of `[A-Za-z0-9._-]`, not starting with a dot (they
/// name a folder of workspaces).
pub fn is_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why `API_KEYS` cannot be applied; startup stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("API_KEYS lists the key {prefix}… for both tenant {first} and tenant {second}; list each key once")]
    Twice {
        prefix: String,
        first: String,
        second: String,
    },
    #[error("API_KEYS lists the key {prefix}… for tenant {listed}, but it is key {id} of tenant {owner}, made with `keys create` or at first start; revoke it there (`keys revoke {id}`) or list it under {owner}")]
    NotFromList {
        prefix: String,
        id: String,
        listed: String,
        owner: String,
    },
}

/// The part of a key that lists and logs show: at most 8 characters and at
/// most a quarter of the key, so a short key is never shown whole.
pub fn display_prefix(key: &str) -> String {
    let n = key.chars().count();
    key.chars().take((n / 4).min(8)).collect()
}

/// Makes the database agree with `API_KEYS`: every listed key is active, in
/// the tenant the list names (a key moved in the list moves; one removed and
/// listed again is active again); env keys no longer listed are revoked.
/// When no key exists at all, creates one and returns it so it can be shown
/// once. Nothing is written when the list cannot be applied.
pub fn sync_keys(
    conn: &mut DbConnection,
    entries: &[String],
    default_budget: Option<i64>,
) -> Result<Option<String>, SyncError> {
    use crate::db::schema::api_keys;
    use diesel::prelude::*;

    let now = db::now();
    let mut listed: Vec<(String, String, String)> = Vec::new();
    for entry in entries {
        let (tenant_name, key) = parse_entry(entry);
        let key_hash = hash_key(&key);
        match listed.iter().find(|(_, hash, _)| *hash == key_hash) {
            Some((first, _, _)) if *first != tenant_name => {
                return Err(SyncError::Twice {
                    prefix: display_prefix(&key),
                    first: first.clone(),
                    second: tenant_name,
                });
            }
            Some(_) => continue,
            None => listed.push((tenant_name, key_hash, display_prefix(&key))),
        }
    }
    // Checked before anything is written.
    for (tenant_name, key_hash, prefix) in &listed {
        let existing: Option<ApiKey> = api_keys::table
            .filter(api_keys::key_hash.eq(key_hash))
            .select(ApiKey::as_select())
            .first(conn)
            .optional()
            .map_err(db::DbError::from)?;
        if let Some(row) = existing {
            if row.label != ENV_LABEL && row.tenant_id != *tenant_name {
                return Err(SyncError::NotFromList {
                    prefix: prefix.clone(),
                    id: row.id,
                    listed: tenant_name.clone(),
                    owner: row.tenant_id,
                });
            }
        }
    }
    for (tenant_name, key_hash, prefix) in &listed {
        tenant::ensure_tenant(conn, &Tenant::new(tenant_name, default_budget))?;
        tenant::ensure_key(
            conn,
            &ApiKey {
                id: format!("key_{}", &key_hash[..12]),
                tenant_id: tenant_name.clone(),
                prefix: prefix.clone(),
                key_hash: key_hash.clone(),
                label: ENV_LABEL.into(),
                role: "member".into(),
                created_at: now,
                revoked_at: None,
                owner_subject: None,
                expires_at: None,
            },
        )?;
        // The list is the truth for its keys: their tenant, active.
        let changed = diesel::update(
            api_keys::table
                .filter(api_keys::key_hash.eq(key_hash))
                .filter(
                    api_keys::tenant_id
                        .ne(tenant_name)
                        .or(api_keys::revoked_at.is_not_null())
                        .or(api_keys::prefix.ne(prefix)),
                ),
        )
        .set((
            api_keys::tenant_id.eq(tenant_name),
            api_keys::revoked_at.eq(None::<chrono::NaiveDateTime>),
            api_keys::prefix.eq(prefix),
        ))
        .execute(conn)
        .map_err(db::DbError::from)?;
        if changed > 0 {
            tracing::info!(key = %prefix, tenant = %tenant_name, "API_KEYS key (re)activated in its listed tenant");
        }
    }
    let hashes: Vec<&String> = listed.iter().map(|(_, hash, _)| hash).collect();
    diesel::update(
        api_keys::table
            .filter(api_keys::label.eq(ENV_LABEL))
            .filter(api_keys::revoked_at.is_null())
            .filter(api_keys::key_hash.ne_all(hashes)),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)
    .map_err(db::DbError::from)?;

    if tenant::count_active_keys(conn)? > 0 {
        return Ok(None);
    }
    let key = generate_key();
    let key_hash = hash_key(&key);
    tenant::ensure_tenant(conn, &Tenant::new("default", default_budget))?;
    tenant::ensure_key(
        conn,
        &ApiKey {
            id: format!("key_{}", &key_hash[..12]),
            tenant_id: "default".into(),
            prefix: display_prefix(&key),
            key_hash,
            label: "generated at first start".into(),
            role: Role::Owner.as_str().into(),
            created_at: now,
            revoked_at: None,
            owner_subject: None,
            expires_at: None,
        },
    )?;
    Ok(Some(key))
}

/// Creates a key for an existing tenant; returns the row and the key, which
/// is never stored and cannot be shown again.
pub fn create_key(
    conn: &mut DbConnection,
    tenant_id: &str,
    role: &str,
    label: &str,
) -> DbResult<(ApiKey, String)> {
    store_new_key(conn, tenant_id, role, label, None, None)
}

/// Creates a member's own key: `owner_subject`'s, ending at `expires_at`.
pub fn create_personal_key(
    conn: &mut DbConnection,
    tenant_id: &str,
    role: &str,
    label: &str,
    owner_subject: &str,
    expires_at: chrono::NaiveDateTime,
) -> DbResult<(ApiKey, String)> {
    store_new_key(
        conn,
        tenant_id,
        role,
        label,
        Some(owner_subject.to_owned()),
        Some(expires_at),
    )
}

fn store_new_key(
    conn: &mut DbConnection,
    tenant_id: &str,
    role: &str,
    label: &str,
    owner_subject: Option<String>,
    expires_at: Option<chrono::NaiveDateTime>,
) -> DbResult<(ApiKey, String)> {
    let key = generate_key();
    let key_hash = hash_key(&key);
    let row = ApiKey {
        id: format!("key_{}", &key_hash[..12]),
        tenant_id: tenant_id.to_owned(),
        prefix: display_prefix(&key),
        key_hash,
        label: label.to_owned(),
        role: role.to_owned(),
        created_at: db::now(),
        revoked_at: None,
        owner_subject,
        expires_at,
    };
    tenant::ensure_key(conn, &row)?;
    Ok((row, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_and_unique() {
        let a = generate_key();
        let b = generate_key();
        assert!(a.starts_with(KEY_PREFIX));
        assert_ne!(a, b);
        assert!(a.len() > 40);
    }

    #[test]
    fn entries_name_their_tenant() {
        assert_eq!(
            parse_entry("alice:s3cret"),
            ("alice".into(), "s3cret".into())
        );
        let (tenant, key) = parse_entry("plainkey");
        assert_eq!(key, "plainkey");
        assert!(tenant.starts_with("t-") && !tenant.contains("plainkey"));
        // A colon inside a key that is not a tenant name keeps the whole key.
        assert_eq!(parse_entry("a b:c").1, "a b:c");
    }

    #[test]
    fn a_displayed_prefix_never_shows_a_short_key_whole() {
        assert_eq!(display_prefix("abc"), "");
        assert_eq!(display_prefix("abcdefgh"), "ab");
        assert_eq!(display_prefix("alice-key-0123456789"), "alice");
        assert_eq!(display_prefix(&generate_key()).len(), 8);
    }
}
