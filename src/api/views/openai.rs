//! Conventions of the OpenAI-compatible surface that other rooms need.

/// The session used when a request names none.
pub const DEFAULT_SESSION: &str = "openai";
