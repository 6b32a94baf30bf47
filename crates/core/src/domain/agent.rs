//! Subagents: named helpers a session's agent can hand work to with its
//! `Task` tool. They are given to the CLI in its `initialize` request, from
//! a template, the session and a job, merged by name in that order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most subagents one session or job may define.
pub const MAX_AGENTS: usize = 32;
/// Longest description (the model reads it to choose a subagent).
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest system prompt of one subagent, in characters.
pub const MAX_PROMPT_CHARS: usize = 100 * 1024;

/// One subagent, as the CLI's `initialize.agents` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// When the agent should use it.
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$", max_length = 2000)]
    pub description: String,
    /// The subagent's system prompt.
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$", max_length = 102400)]
    pub prompt: String,
    /// The tools it may use; all of the session's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(inline, value_type = Option<Vec<ToolName>>)]
    pub tools: Option<Vec<String>>,
    /// Its model (`sonnet`, `opus`, `haiku`, a model name or `inherit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$", max_length = 128)]
    pub model: Option<String>,
}

/// A tool's name or rule, as `allowed_tools` takes it.
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$", max_length = 256)]
pub struct ToolName(#[expect(dead_code, reason = "a schema only")] String);

/// Subagent names: what the CLI shows as the `Task` tool's `subagent_type`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Why a set of subagent definitions cannot be used (`field` names where
/// it came from), or `Ok`.
pub fn validate(field: &str, agents: &BTreeMap<String, AgentSpec>) -> Result<(), String> {
    if agents.len() > MAX_AGENTS {
        return Err(format!(
            "{field}: at most {MAX_AGENTS} subagents, not {}",
            agents.len()
        ));
    }
    for (name, agent) in agents {
        if !valid_name(name) {
            return Err(format!(
                "{field}: invalid subagent name {name:?}: use A-Z a-z 0-9 _ - (at most 64), starting with a letter or digit"
            ));
        }
        if agent.description.trim().is_empty()
            || agent.description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Err(format!(
                "{field}.{name}.description must be 1 to {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        if agent.prompt.trim().is_empty() || agent.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(format!(
                "{field}.{name}.prompt must be 1 to {MAX_PROMPT_CHARS} characters"
            ));
        }
        if let Some(tool) = agent
            .tools
            .iter()
            .flatten()
            .find(|t| t.trim().is_empty() || t.chars().count() > 256)
        {
            return Err(format!("{field}.{name}.tools: invalid tool {tool:?}"));
        }
        if agent
            .model
            .as_ref()
            .is_some_and(|m| m.trim().is_empty() || m.chars().count() > 128)
        {
            return Err(format!("{field}.{name}.model must be 1 to 128 characters"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(description: &str) -> AgentSpec {
        AgentSpec {
            description: description.into(),
            prompt: "p".into(),
            tools: None,
            model: None,
        }
    }

    #[test]
    fn names_and_fields_are_checked() {
        let mut agents = BTreeMap::new();
        agents.insert("reviewer".to_string(), agent("reviews"));
        assert!(validate("agents", &agents).is_ok());
        agents.insert("-bad".to_string(), agent("x"));
        assert!(validate("agents", &agents).unwrap_err().contains("-bad"));
        let mut empty = BTreeMap::new();
        empty.insert("ok".to_string(), agent(" "));
        assert!(validate("agents", &empty)
            .unwrap_err()
            .contains("agents.ok.description"));
    }
}
