//! The documents the API answers with, shared by the REST handlers, MCP
//! and the OpenAPI document. Handlers build these; they never import each
//! other.

pub mod chat;
pub mod health;
pub mod history;
pub mod keys;
pub mod nodes;
pub mod openai;
pub mod sessions;
pub mod templates;
