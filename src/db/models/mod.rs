//! Row types and the queries that belong to them. Every query over tenant
//! data takes the caller's `TenantId`, so scoping cannot be forgotten.

pub mod event;
pub mod message;
pub mod session;
pub mod tenant;
pub mod turn;
pub mod workspace;

pub use tenant::TenantId;
