//! The HTTP surface. `routes` is the whole route table on one screen; the
//! other modules are handlers (extract, validate, make one service call,
//! map) and what they share: views (response documents), the envelope,
//! middleware, the identity extractor.

mod admin;
mod audit;
mod chat;
mod control;
mod egress;
pub mod envelope;
mod event_stream;
mod files;
mod flags;
mod forks;
pub mod forward;
mod git;
mod health;
mod history;
mod idempotency;
mod jobs;
pub(crate) mod limits;
pub mod mcp;
mod me;
mod members;
mod message_form;
pub mod middleware;
mod model_credentials;
mod nodes;
mod openai;
pub mod openapi;
mod path_rules;
mod pipelines;
mod repos;
pub mod route_table;
pub mod routes;
mod schedules;
mod schema_parts;
pub mod scrape;
mod secrets;
mod sessions;
mod templates;
mod tenant_defaults;
mod trust_rules;
mod usage;
pub mod views;
mod webhooks;
mod working_dir;
