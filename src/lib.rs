//! claude-code-api: a self-hosted, multi-tenant REST + SSE server that turns
//! the Claude Code CLI into a remote service.

pub mod actors;
pub mod admin_cli;
pub mod api;
pub mod app;
pub mod blocking;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod db;
pub mod disk;
pub mod domain;
pub mod egress;
pub mod error;
pub mod files;
pub mod gateway;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod redact;
pub mod sandbox;
pub mod security;
pub mod services;
pub mod spec;
pub mod telemetry;
pub mod templates;
pub mod webhooks;
pub mod workspace;
