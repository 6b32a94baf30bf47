//! API keys as documents, and the roles the documents name.

use claude_code_api_core::db::models::tenant::ApiKey;
use serde::Serialize;
use utoipa::ToSchema;

/// An API key's record. The key itself is shown once, at creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyData {
    id: String,
    tenant: String,
    /// The key's first characters, to recognise it.
    prefix: String,
    label: String,
    /// `viewer`, `member`, `admin` or `owner`.
    role: String,
    created_at: String,
    revoked_at: Option<String>,
    /// When it stops working by itself (personal keys), if ever.
    expires_at: Option<String>,
    /// A member's own key: the person's subject (`sub`).
    owner_subject: Option<String>,
    /// Only in the answer to its creation; never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl KeyData {
    pub fn new(k: ApiKey, key: Option<String>) -> Self {
        KeyData {
            created_at: claude_code_api_core::domain::timestamp(&k.created_at),
            expires_at: k
                .expires_at
                .as_ref()
                .map(claude_code_api_core::domain::timestamp),
            owner_subject: k.owner_subject,
            revoked_at: k
                .revoked_at
                .as_ref()
                .map(claude_code_api_core::domain::timestamp),
            id: k.id,
            tenant: k.tenant_id,
            prefix: k.prefix,
            label: k.label,
            role: k.role,
            key,
        }
    }
}

/// A role, as the document states the values `create_key` and the member
/// routes accept.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum KeyRole {
    Viewer,
    Member,
    Admin,
    Owner,
}
