//! What a session asks of the agent (model, prompts, tools, permissions)
//! and what one turn may change of it, with the permission ceiling.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PermissionMode {
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "acceptEdits")]
    AcceptEdits,
    #[serde(rename = "plan")]
    Plan,
    #[serde(rename = "bypassPermissions")]
    BypassPermissions,
    #[serde(rename = "dontAsk")]
    DontAsk,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Plan => "plan",
            PermissionMode::BypassPermissions => "bypassPermissions",
            PermissionMode::DontAsk => "dontAsk",
        }
    }
}

/// Every permission mode, in the CLI's order.
pub const ALL_PERMISSION_MODES: [PermissionMode; 5] = [
    PermissionMode::Default,
    PermissionMode::AcceptEdits,
    PermissionMode::Plan,
    PermissionMode::BypassPermissions,
    PermissionMode::DontAsk,
];

/// A comma-separated list of modes (`default, acceptEdits`).
pub fn parse_modes(text: &str) -> Result<Vec<PermissionMode>, String> {
    let modes: Vec<PermissionMode> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PermissionMode::from_str)
        .collect::<Result<_, _>>()?;
    if modes.is_empty() {
        return Err("name at least one permission mode".into());
    }
    Ok(modes)
}

/// The operator's ceiling: `mode` must be one the server allows
/// (`CLAUDE_ALLOWED_PERMISSION_MODES`) and, when the tenant has a list of its
/// own, one of the tenant's. The error names the modes that are allowed.
pub fn check_permission_mode(
    mode: PermissionMode,
    server: &[PermissionMode],
    tenant: Option<&str>,
) -> Result<(), String> {
    let tenant_modes = tenant.and_then(|t| parse_modes(t).ok());
    let allowed: Vec<PermissionMode> = server
        .iter()
        .copied()
        .filter(|m| tenant_modes.as_ref().is_none_or(|t| t.contains(m)))
        .collect();
    if allowed.contains(&mode) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    Err(format!(
        "permission_mode {} is not allowed here; allowed: {}",
        mode.as_str(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

impl FromStr for PermissionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(PermissionMode::Default),
            "acceptEdits" => Ok(PermissionMode::AcceptEdits),
            "plan" => Ok(PermissionMode::Plan),
            "bypassPermissions" => Ok(PermissionMode::BypassPermissions),
            "dontAsk" => Ok(PermissionMode::DontAsk),
            other => Err(format!(
                "unknown permission mode {other:?}; expected default, acceptEdits, plan, \
                 bypassPermissions or dontAsk"
            )),
        }
    }
}

impl fmt::Display for PermissionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
            Effort::Max => "max",
        }
    }
}

/// Who sees a session: the whole tenant (the default), or only its maker
/// and the tenant's admins.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Tenant,
    Private,
}

impl Visibility {
    pub fn is_tenant(&self) -> bool {
        *self == Visibility::Tenant
    }

    pub fn is_private(&self) -> bool {
        *self == Visibility::Private
    }
}

/// A session's own choices, stored with the session. `None` = server default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Replaces Claude Code's own system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Appended to Claude Code's own system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<PermissionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    #[serde(
        default,
        deserialize_with = "tool_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "tool_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub disallowed_tools: Option<Vec<String>>,
    /// Extra environment of this session's CLI processes (from a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// MCP servers of this session's CLI by name: a template's, with the
    /// session's laid over them (`domain::mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<BTreeMap<String, Value>>,
    /// Subagents by name (a template's, with the session's laid over them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<BTreeMap<String, crate::domain::agent::AgentSpec>>,
    /// `false`: the CLI also uses the MCP servers of the workspace's
    /// `.mcp.json`; unset or `true`: only those given here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mcp_config: Option<bool>,
}

/// Per-turn overrides a chat or job request may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnOverrides {
    #[serde(default)]
    pub model: Option<String>,
    /// Appended to the system prompt for this turn.
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub effort: Option<Effort>,
    #[serde(default)]
    pub permission_mode: Option<PermissionMode>,
    /// Structured output: the JSON Schema the answer must follow
    /// (`--json-schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    /// A job's git step (kept with the job, so a resumed job still has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<crate::domain::job_git::JobGit>,
    /// A job's own subagents, laid over the session's by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<BTreeMap<String, crate::domain::agent::AgentSpec>>,
    /// A job's own MCP servers, laid over the session's by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<BTreeMap<String, Value>>,
    /// A job's own choice of the session's `strict_mcp_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mcp_config: Option<bool>,
}

/// A request's `output_format`, as the original takes it:
/// `{"type": "json_schema", "schema": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputFormat {
    /// `json_schema`, the one kind the CLI supports.
    #[serde(rename = "type")]
    #[schema(pattern = "^json_schema$")]
    pub kind: String,
    /// A JSON Schema of an object; the answer's `structured_output` follows it.
    #[serde(default)]
    #[schema(value_type = Object, required)]
    pub schema: Value,
}

impl OutputFormat {
    /// The schema to pass to the CLI, or why the format cannot be honoured.
    pub fn json_schema(&self) -> Result<Value, String> {
        if self.kind != "json_schema" {
            return Err(format!(
                "output_format.type {:?} is not supported; use \"json_schema\" with a schema",
                self.kind
            ));
        }
        if !self.schema.is_object() {
            return Err("output_format.schema must be a JSON Schema object".into());
        }
        Ok(self.schema.clone())
    }
}

/// Accepts `["Read","Write"]` or `"Read, Write"`.
pub fn tool_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tools {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Option::<Tools>::deserialize(d)? {
        None => None,
        Some(Tools::List(items)) => Some(
            items
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        ),
        Some(Tools::Csv(csv)) => Some(
            csv.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
    })
}
