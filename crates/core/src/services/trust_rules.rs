//! Trust rules: which bearer tokens of which identity provider or CI issuer
//! (GitHub Actions, GitLab CI, …) act as whom, so a pipeline calls the
//! server without a stored key. Admin keys only; every change is audited,
//! and takes effect at once on every node (cached token identities are
//! dropped like those of a revoked key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{audit, Requester, Services};
use crate::db::models::tenant;
use crate::db::models::trust_rule::{self, Refused, TrustRule};
use crate::db::{self};
use crate::domain::role::Role;
use crate::error::ServiceError;
use crate::security::jwks::check_issuer_url;
use crate::security::keys;

/// Rules one tenant may have.
pub const MAX_PER_TENANT: i64 = 50;
/// Rules the server may have.
pub const MAX_TOTAL: i64 = 1000;
/// Claims one rule may require.
pub const MAX_CLAIMS: usize = 16;
/// Longest claim name, audience and claim value, in characters.
pub const MAX_CLAIM_NAME_CHARS: usize = 64;
pub const MAX_VALUE_CHARS: usize = 256;
/// Claims checked by the verification itself, not by a rule's `claims`.
const RESERVED_CLAIMS: &[&str] = &["iss", "aud", "exp", "nbf", "iat", "jti"];

/// `POST /admin/trust-rules`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrustRule {
    /// Unique on the server; rules are tried in the order of their names.
    /// 1–64 of `[A-Za-z0-9._-]`, not starting with a dot.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// The issuer exactly as tokens carry it in `iss` (its discovery
    /// document is at `<issuer>/.well-known/openid-configuration`):
    /// `https://`, or `http://` on loopback only.
    #[schema(
        max_length = 512,
        example = "https://token.actions.githubusercontent.com"
    )]
    pub issuer: String,
    /// What the token's `aud` must hold.
    #[schema(min_length = 1, max_length = 256, example = "https://cca.example.com")]
    pub audience: String,
    /// Claim name → the value it must have (a string; numbers and booleans
    /// compare as their JSON text). A value ending in `*` matches every value
    /// starting with what precedes it (`acme/*`). At least one, at most 16.
    #[schema(example = json!({"repository": "acme/app", "ref": "refs/heads/main"}))]
    pub claims: BTreeMap<String, String>,
    /// The tenant the token acts for.
    pub tenant: String,
    /// `member` (default) or `admin`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "member")]
    pub role: Option<String>,
}

/// A trust rule as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrustRuleView {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub claims: BTreeMap<String, String>,
    pub tenant: String,
    /// `viewer`, `member` (default), `admin` or `owner`, no higher than
    /// the caller's own.
    pub role: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// What a token's caller is named by in the audit log (`key_id`).
    pub key_id: String,
}

impl From<TrustRule> for TrustRuleView {
    fn from(r: TrustRule) -> TrustRuleView {
        TrustRuleView {
            claims: serde_json::from_str(&r.claims).unwrap_or_default(),
            created_at: crate::domain::timestamp(&r.created_at),
            key_id: format!("{}{}", crate::security::tokens::KEY_ID_PREFIX, r.id),
            id: r.id,
            name: r.name,
            issuer: r.issuer,
            audience: r.audience,
            tenant: r.tenant_id,
            role: r.role,
        }
    }
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Validation(message.into())
}

fn printable(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

/// Checks a new rule; its role (member by default) when it is sound.
fn validate(rule: &NewTrustRule) -> Result<String, ServiceError> {
    if !keys::is_tenant_name(&rule.name) {
        return Err(invalid(
            "name must be 1-64 of A-Z a-z 0-9 . _ - not starting with '.'",
        ));
    }
    check_issuer_url(&rule.issuer).map_err(|e| invalid(format!("issuer {e}")))?;
    let audience_chars = rule.audience.chars().count();
    if audience_chars == 0 || audience_chars > MAX_VALUE_CHARS || !printable(&rule.audience) {
        return Err(invalid(format!(
            "audience must be 1-{MAX_VALUE_CHARS} printable characters"
        )));
    }
    // A rule without claims would trust every token of the issuer: on
    // GitHub, every repository's workflows.
    if rule.claims.is_empty() || rule.claims.len() > MAX_CLAIMS {
        return Err(invalid(format!(
            "claims must name 1-{MAX_CLAIMS} claims (e.g. {{\"repository\": \"acme/app\"}})"
        )));
    }
    for (name, value) in &rule.claims {
        let name_chars = name.chars().count();
        if name_chars == 0 || name_chars > MAX_CLAIM_NAME_CHARS || !printable(name) {
            return Err(invalid(format!(
                "claim names must be 1-{MAX_CLAIM_NAME_CHARS} printable characters"
            )));
        }
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(invalid(format!(
                "claim {name:?} is checked by the verification itself (issuer, audience, times)"
            )));
        }
        let value_chars = value.chars().count();
        if value_chars == 0 || value_chars > MAX_VALUE_CHARS || !printable(value) {
            return Err(invalid(format!(
                "claim {name:?}: values must be 1-{MAX_VALUE_CHARS} printable characters"
            )));
        }
        if value == "*" {
            return Err(invalid(format!(
                "claim {name:?}: \"*\" alone matches every value; name a prefix (\"acme/*\")"
            )));
        }
    }
    let role = rule.role.as_deref().unwrap_or(Role::Member.as_str());
    if Role::parse(role).is_none() {
        return Err(invalid(format!("role must be {}", Role::names())));
    }
    Ok(role.to_owned())
}

/// Creates a rule for an existing tenant; a taken name is a conflict.
pub async fn create(
    services: &Services,
    who: &Requester,
    rule: NewTrustRule,
) -> Result<TrustRuleView, ServiceError> {
    // The owner's: rules of every tenant match one issuer's tokens, so a
    // tenant's admin could otherwise claim another tenant's tokens.
    who.require_owner()?;
    let role = validate(&rule)?;
    // An admin lets in tokens no more powerful than itself.
    let role = super::admin::grantable_role(who, Some(&role))?;
    let claims = serde_json::to_string(&rule.claims).map_err(ServiceError::internal)?;
    let row = TrustRule {
        id: format!("tr_{}", uuid::Uuid::now_v7().simple()),
        name: rule.name.clone(),
        issuer: rule.issuer,
        audience: rule.audience,
        claims,
        tenant_id: rule.tenant.clone(),
        role,
        created_at: crate::db::now(),
    };
    let stored = row.clone();
    let outcome = db::run(&services.pool, move |c| {
        if tenant::find_tenant(c, &stored.tenant_id)?.is_none() {
            return Ok(None);
        }
        trust_rule::insert(c, &stored, MAX_PER_TENANT, MAX_TOTAL).map(Some)
    })
    .await;
    match outcome {
        Ok(Some(Ok(()))) => {}
        Ok(Some(Err(Refused::TenantFull))) => {
            return Err(ServiceError::Conflict(format!(
                "tenant {:?} has {MAX_PER_TENANT} trust rules already",
                rule.tenant
            )))
        }
        Ok(Some(Err(Refused::ServerFull))) => {
            return Err(ServiceError::Conflict(format!(
                "the server has {MAX_TOTAL} trust rules already"
            )))
        }
        Ok(None) => {
            return Err(ServiceError::NotFound(format!(
                "no tenant {:?}",
                rule.tenant
            )))
        }
        Err(e) if e.is_unique_violation() => {
            return Err(ServiceError::Conflict(format!(
                "a trust rule named {:?} exists",
                rule.name
            )))
        }
        Err(e) => return Err(e.into()),
    }
    // A token already resolved by a later rule (by name) is read again.
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "trust_rule.create", &row.id).await;
    Ok(TrustRuleView::from(row))
}

/// Rules by name, of one tenant or all.
pub async fn list(
    services: &Services,
    who: &Requester,
    tenant: Option<String>,
) -> Result<Vec<TrustRuleView>, ServiceError> {
    who.require_owner()?;
    let rows = db::run(&services.pool, move |c| {
        trust_rule::list(c, tenant.as_deref())
    })
    .await?;
    Ok(rows.into_iter().map(TrustRuleView::from).collect())
}

/// Deletes a rule: tokens it let in are refused from now on, on every node.
pub async fn delete(
    services: &Services,
    who: &Requester,
    id: String,
) -> Result<TrustRuleView, ServiceError> {
    who.require_owner()?;
    let lookup = id.clone();
    let deleted = db::run(&services.pool, move |c| {
        trust_rule::delete(c, &lookup, None)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no trust rule {id:?}")))?;
    services.identities.changed(&services.pool).await;
    audit::record(services, who, "trust_rule.delete", &deleted.id).await;
    Ok(TrustRuleView::from(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(claims: &[(&str, &str)]) -> NewTrustRule {
        NewTrustRule {
            name: "ci-app".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            audience: "https://cca.example.com".into(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            tenant: "alice".into(),
            role: None,
        }
    }

    #[test]
    fn a_rule_must_narrow_the_issuers_tokens() {
        assert_eq!(
            validate(&rule(&[("repository", "acme/app")])).unwrap(),
            "member"
        );
        assert!(validate(&rule(&[])).is_err());
        assert!(validate(&rule(&[("repository", "*")])).is_err());
        assert!(validate(&rule(&[("aud", "x")])).is_err());
        assert!(validate(&rule(&[("repository", "")])).is_err());
        let mut admin = rule(&[("repository_owner", "acme")]);
        admin.role = Some("admin".into());
        assert_eq!(validate(&admin).unwrap(), "admin");
        admin.role = Some("root".into());
        assert!(validate(&admin).is_err());
        let mut plain_http = rule(&[("repository", "acme/app")]);
        plain_http.issuer = "http://idp.example.com".into();
        assert!(validate(&plain_http).is_err());
    }
}
