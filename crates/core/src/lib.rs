//! The core of claude-code-api: sessions and their CLI processes (actors),
//! the sandbox, the model gateway's rules, storage and the services every
//! surface calls. It knows no HTTP framework: the server binary's edge
//! (REST, SSE, MCP, the console) reaches it through `services`.

pub mod actors;
pub mod blocking;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod disk;
pub mod domain;
pub mod egress;
pub mod error;
pub mod files;
pub mod gateway;
pub mod git;
pub mod leftovers;
pub mod memory;
pub mod metrics;
pub mod redact;
pub mod sandbox;
pub mod security;
pub mod services;
pub mod snapshots;
pub mod spec;
pub mod telemetry;
pub mod templates;
pub mod webhooks;
pub mod workspace;
