#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a step that fails panics, which fails the test"
)]
//! Integration tests: the real application on port 0 with a fresh database,
//! driven over HTTP; the agent is the real Claude Code CLI talking to a
//! scripted mock model (or, for faults, a small fake CLI).

mod git_server;
mod helpers;
mod python;
mod receiver;

mod approvals;
mod boundary;
mod chat;
mod cluster;
mod compat;
mod console;
mod contract;
mod disk;
mod equip;
mod errors;
mod events;
mod faults;
mod files;
mod forks;
mod gateway;
mod gateway_boundary;
mod idle;
mod jobs;
mod lifecycle;
mod logs;
mod mcp;
mod metrics;
mod money;
mod network;
mod oidc;
mod openai;
mod openapi;
mod permissions;
mod pipelines;
mod quickstart;
mod races;
mod recovery;
mod repos;
mod sandbox;
mod schedules;
mod secrets;
mod sessions;
mod streaming;
mod templates;
mod tenancy;
mod transcripts;
mod workload_identity;
mod workspaces;
