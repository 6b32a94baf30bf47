//! A tenant's secrets: write-only named values, sealed with `SECRETS_KEY`,
//! used by name wherever a credential is needed (`{"secret": "NAME"}`).
//! Values never appear in an answer, a log line or the audit log.

use serde::{Deserialize, Serialize};

use super::{audit, Requester, Services};
use crate::db::models::secret::{self, SecretInfo};
use crate::db::models::TenantId;
use crate::db::{self};
use crate::error::ServiceError;

/// Longest value accepted, in characters (an SSH key or a certificate fits).
pub const MAX_VALUE: usize = 64 * 1024;
/// Secrets one tenant may keep.
pub const MAX_PER_TENANT: i64 = 200;

/// `PUT /secrets/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// Write-only: never shown again.
    #[schema(min_length = 1, max_length = 65536, pattern = "^[^\\x00]*$")]
    pub value: String,
}

/// A secret as the API shows it: its name and dates, never its value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// When the server last used it (a fetch, a push, …).
    pub last_used_at: Option<String>,
}

impl From<SecretInfo> for SecretView {
    fn from(s: SecretInfo) -> SecretView {
        SecretView {
            name: s.name,
            created_at: crate::domain::timestamp(&s.created_at),
            updated_at: crate::domain::timestamp(&s.updated_at),
            last_used_at: s.last_used_at.as_ref().map(crate::domain::timestamp),
        }
    }
}

/// A reference to a secret where a credential goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The name of one of the tenant's secrets.
    pub secret: String,
}

/// Letters, digits and `_`, starting with a letter or `_`, at most 64.
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Validation(
            "a secret's name is 1-64 letters, digits or '_', not starting with a digit".into(),
        ))
    }
}

/// Stores the secret (new or replaced); `true` when it is new. Audited by
/// name only.
pub async fn put(
    services: &Services,
    who: &Requester,
    name: &str,
    value: SecretValue,
) -> Result<(SecretView, bool), ServiceError> {
    validate_name(name)?;
    let chars = value.value.chars().count();
    if chars == 0 || chars > MAX_VALUE || value.value.contains('\0') {
        return Err(ServiceError::Validation(format!(
            "value must be 1 to {MAX_VALUE} characters of text"
        )));
    }
    let tenant = who.tenant().clone();
    let sealed = services
        .git
        .secrets
        .seal(value.value.as_bytes(), &secret::context(&tenant, name))
        .map_err(ServiceError::internal)?;
    let lookup = name.to_owned();
    let (created, info) = db::run(&services.pool, move |c| {
        let exists = secret::info(c, &tenant, &lookup)?.is_some();
        if !exists && secret::count(c, &tenant)? >= MAX_PER_TENANT {
            return Ok(None);
        }
        let created = secret::put(c, &tenant, &lookup, &sealed)?;
        Ok(Some((created, secret::info(c, &tenant, &lookup)?)))
    })
    .await?
    .ok_or_else(|| {
        ServiceError::Conflict(format!(
            "this tenant has {MAX_PER_TENANT} secrets, its limit; delete one first"
        ))
    })?;
    let info = info.ok_or_else(|| ServiceError::internal("the secret just stored is gone"))?;
    audit::record(services, who, "secret.put", name).await;
    Ok((info.into(), created))
}

pub async fn list(services: &Services, who: &Requester) -> Result<Vec<SecretView>, ServiceError> {
    let tenant = who.tenant().clone();
    let rows = db::run(&services.pool, move |c| secret::list(c, &tenant)).await?;
    Ok(rows.into_iter().map(SecretView::from).collect())
}

pub async fn delete(services: &Services, who: &Requester, name: &str) -> Result<(), ServiceError> {
    let (tenant, lookup) = (who.tenant().clone(), name.to_owned());
    let gone = db::run(&services.pool, move |c| secret::delete(c, &tenant, &lookup)).await?;
    if !gone {
        return Err(ServiceError::NotFound(format!("no secret named {name:?}")));
    }
    audit::record(services, who, "secret.delete", name).await;
    Ok(())
}

/// Whether the tenant has a secret `name` (a reference is checked when it
/// is made).
pub async fn exists(
    services: &Services,
    tenant: &TenantId,
    name: &str,
) -> Result<bool, ServiceError> {
    let (tenant, lookup) = (tenant.clone(), name.to_owned());
    Ok(
        db::run(&services.pool, move |c| secret::info(c, &tenant, &lookup))
            .await?
            .is_some(),
    )
}

/// The value of the tenant's secret `name`, for the server's own use (its
/// use recorded). A missing one is a 409: what refers to it cannot work.
pub async fn resolve(
    services: &Services,
    tenant: &TenantId,
    name: &str,
) -> Result<String, ServiceError> {
    let (t, lookup) = (tenant.clone(), name.to_owned());
    let sealed = db::run(&services.pool, move |c| {
        secret::take_for_use(c, &t, &lookup)
    })
    .await?
    .ok_or_else(|| {
        ServiceError::Conflict(format!(
            "the secret {name:?} this refers to does not exist (PUT /api/v1/secrets/{name})"
        ))
    })?;
    let plain = services
        .git
        .secrets
        .open(&sealed, &secret::context(tenant, name))
        .map_err(|e| {
            ServiceError::Unavailable(format!("the secret {name:?} cannot be read: {e}"))
        })?;
    String::from_utf8(plain).map_err(ServiceError::internal)
}
