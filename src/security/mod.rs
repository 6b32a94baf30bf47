//! Who is calling: API keys, their tenants, and the authentication extractor.

pub mod auth;
pub mod keys;
