//! Row types and the queries that belong to them. Every query over tenant
//! data takes the caller's `TenantId`, so scoping cannot be forgotten.

pub mod agent_user;
pub mod approval;
pub mod audit;
pub mod budget;
pub mod console_session;
pub mod egress;
pub mod event;
pub mod idempotency;
pub mod instance;
pub mod job;
pub mod lease;
pub mod leftover;
pub mod member;
pub mod message;
pub mod model_call;
pub mod overview;
pub mod pipeline;
pub mod repo;
pub mod schedule;
pub mod secret;
pub mod session;
pub mod session_fork;
pub mod session_page;
pub mod session_repo;
pub mod tenant;
pub mod tenant_defaults;
pub mod transcript;
pub mod trust_rule;
pub mod turn;
pub mod turn_snapshot;
pub mod usage;
pub mod usage_daily;
pub mod webhook;
pub mod webhook_secret;
pub mod workspace;

pub use tenant::TenantId;
