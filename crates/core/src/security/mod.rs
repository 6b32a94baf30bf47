//! Who is calling: API keys, bearer tokens of trusted issuers, their tenants;
//! and where a caller may reach on disk: path confinement.

pub mod auth;
pub mod auth_failures;
pub mod client;
pub mod cluster_auth;
pub mod identities;
pub mod jwks;
pub mod keys;
pub mod paths;
pub mod rate_limit;
pub mod secret_box;
pub mod tokens;
