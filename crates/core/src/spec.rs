//! How a session's spec, a turn's overrides, a template and the server
//! defaults combine into the launch spec a CLI process is started with.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::Settings;
use crate::domain::session::{Effort, PermissionMode, SessionSpec, TurnOverrides};
use crate::sandbox::network::NetworkMode;
use crate::sandbox::Mode as SandboxMode;
use crate::templates::Template;

impl SessionSpec {
    /// Fills what the request left unset from `template`: explicit request
    /// fields > template > (later, in `LaunchSpec::resolve`) server defaults.
    /// "Explicit" includes an empty list: `allowed_tools: []` stays empty.
    /// The template's `system_prompt` fills `system_prompt` (it replaces
    /// Claude Code's own) when `replace_system_prompt` is set, else
    /// `append_system_prompt`.
    pub fn with_template(self, template: &Template) -> SessionSpec {
        let (template_replace, template_append) = match &template.system_prompt {
            Some(p) if template.replace_system_prompt => (Some(p.clone()), None),
            Some(p) => (None, Some(p.clone())),
            None => (None, None),
        };
        SessionSpec {
            template: Some(template.name.clone()),
            system_prompt: self.system_prompt.or(template_replace),
            append_system_prompt: self.append_system_prompt.or(template_append),
            model: self.model.or_else(|| template.model.clone()),
            max_turns: self.max_turns.or(template.max_turns),
            permission_mode: self.permission_mode.or(template.permission_mode),
            effort: self.effort.or(template.effort),
            allowed_tools: self
                .allowed_tools
                .or_else(|| template.allowed_tools.clone()),
            disallowed_tools: self
                .disallowed_tools
                .or_else(|| template.disallowed_tools.clone()),
            env: self.env.or_else(|| template.env.clone()),
            mcp_servers: merged_by_name(template.mcp_servers.as_ref(), self.mcp_servers.as_ref()),
            agents: merged_by_name(template.agents.as_ref(), self.agents.as_ref()),
            strict_mcp_config: self.strict_mcp_config.or(template.strict_mcp_config),
        }
    }
}

impl SessionSpec {
    /// Fills what the session and its template left unset from the
    /// tenant's defaults (`defaults`); MCP servers and subagents are laid
    /// over the defaults' by name. Template and environment are never
    /// defaults.
    pub fn with_defaults(self, defaults: &SessionSpec) -> SessionSpec {
        SessionSpec {
            template: self.template,
            system_prompt: self
                .system_prompt
                .or_else(|| defaults.system_prompt.clone()),
            append_system_prompt: self
                .append_system_prompt
                .or_else(|| defaults.append_system_prompt.clone()),
            model: self.model.or_else(|| defaults.model.clone()),
            max_turns: self.max_turns.or(defaults.max_turns),
            permission_mode: self.permission_mode.or(defaults.permission_mode),
            effort: self.effort.or(defaults.effort),
            allowed_tools: self
                .allowed_tools
                .or_else(|| defaults.allowed_tools.clone()),
            disallowed_tools: self
                .disallowed_tools
                .or_else(|| defaults.disallowed_tools.clone()),
            env: self.env,
            mcp_servers: merged_by_name(defaults.mcp_servers.as_ref(), self.mcp_servers.as_ref()),
            agents: merged_by_name(defaults.agents.as_ref(), self.agents.as_ref()),
            strict_mcp_config: self.strict_mcp_config.or(defaults.strict_mcp_config),
        }
    }
}

/// `over` laid over `base` by name: a later layer's entry (an MCP server,
/// a subagent) replaces the earlier one of the same name whole.
fn merged_by_name<V: Clone>(
    base: Option<&BTreeMap<String, V>>,
    over: Option<&BTreeMap<String, V>>,
) -> Option<BTreeMap<String, V>> {
    match (base, over) {
        (None, None) => None,
        (base, over) => {
            let mut all = base.cloned().unwrap_or_default();
            all.extend(
                over.into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            Some(all)
        }
    }
}

/// Everything that decides how a CLI process is launched. Two turns with the
/// same launch spec can share a warm process; a different one needs a respawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub append_system_prompt: Option<String>,
    pub max_turns: u32,
    pub permission_mode: PermissionMode,
    pub effort: Option<Effort>,
    pub allowed_tools: Vec<String>,
    pub disallowed_tools: Vec<String>,
    /// Added to the allowlisted environment of this session's process only.
    pub env: BTreeMap<String, String>,
    /// Passed as `--mcp-config` when not empty.
    pub mcp_servers: BTreeMap<String, Value>,
    /// Only `mcp_servers` (`--strict-mcp-config`), not the workspace's
    /// `.mcp.json` as well.
    pub strict_mcp_config: bool,
    /// Per-request cap (`CLAUDE_MAX_COST_PER_REQUEST`), as `--max-budget-usd`.
    pub max_budget_micros: Option<i64>,
    /// Operator-configured extra directories (`--add-dir`).
    pub add_dirs: Vec<std::path::PathBuf>,
    /// Structured output of the turn (`--json-schema`).
    pub json_schema: Option<Value>,
    /// Subagents, given to the CLI in its `initialize` request.
    pub agents: BTreeMap<String, crate::domain::agent::AgentSpec>,
    /// Whether WebFetch asks claude.ai first whether a domain may be
    /// fetched. Not behind the egress proxy: there the tenant's allowlist
    /// decides, and claude.ai would have to be on every list.
    pub web_fetch_preflight: bool,
}

impl LaunchSpec {
    /// Turn overrides > session spec > server defaults, in this one place.
    pub fn resolve(settings: &Settings, spec: &SessionSpec, turn: &TurnOverrides) -> LaunchSpec {
        let append_system_prompt = match (&spec.append_system_prompt, &turn.system) {
            (Some(base), Some(extra)) => Some(format!("{base}\n\n{extra}")),
            (None, Some(extra)) => Some(extra.clone()),
            (base, None) => base.clone(),
        };
        LaunchSpec {
            model: turn
                .model
                .clone()
                .or_else(|| spec.model.clone())
                .or_else(|| settings.sessions.model.clone()),
            system_prompt: spec.system_prompt.clone(),
            append_system_prompt,
            max_turns: spec.max_turns.unwrap_or(settings.sessions.max_turns),
            permission_mode: turn
                .permission_mode
                .or(spec.permission_mode)
                .unwrap_or(settings.sessions.permission_mode),
            effort: turn.effort.or(spec.effort),
            allowed_tools: spec
                .allowed_tools
                .clone()
                .unwrap_or_else(|| settings.sessions.allowed_tools.clone()),
            disallowed_tools: spec
                .disallowed_tools
                .clone()
                .unwrap_or_else(|| settings.sessions.disallowed_tools.clone()),
            env: spec.env.clone().unwrap_or_default(),
            mcp_servers: merged_by_name(spec.mcp_servers.as_ref(), turn.mcp_servers.as_ref())
                .unwrap_or_default(),
            strict_mcp_config: turn
                .strict_mcp_config
                .or(spec.strict_mcp_config)
                .unwrap_or(true),
            max_budget_micros: settings.tenancy.max_cost_per_request_micros,
            add_dirs: settings.sessions.add_dirs.clone(),
            json_schema: turn.json_schema.clone(),
            agents: merged_by_name(spec.agents.as_ref(), turn.agents.as_ref()).unwrap_or_default(),
            web_fetch_preflight: !(settings.network.mode == NetworkMode::Proxy
                && settings.sandbox.mode != SandboxMode::Off),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn later_layers_replace_by_name() {
        let base = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]);
        let over = BTreeMap::from([("b".to_string(), 3)]);
        let all = merged_by_name(Some(&base), Some(&over)).unwrap();
        assert_eq!(
            all,
            BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 3)])
        );
        assert_eq!(merged_by_name::<i32>(None, None), None);
    }

    fn settings() -> Settings {
        let mut vars = BTreeMap::new();
        vars.insert("CLAUDE_MODEL".to_string(), "server-model".to_string());
        vars.insert("CLAUDE_ALLOWED_TOOLS".to_string(), "Read,Grep".to_string());
        Settings::from_vars(&vars).expect("valid")
    }

    #[test]
    fn tools_accept_array_or_csv() {
        let a: SessionSpec =
            serde_json::from_str(r#"{"allowed_tools":["Read"," Write "]}"#).unwrap();
        let b: SessionSpec = serde_json::from_str(r#"{"allowed_tools":"Read, Write"}"#).unwrap();
        assert_eq!(a.allowed_tools, Some(vec!["Read".into(), "Write".into()]));
        assert_eq!(a.allowed_tools, b.allowed_tools);
        let empty: SessionSpec = serde_json::from_str(r#"{"allowed_tools":[]}"#).unwrap();
        assert_eq!(empty.allowed_tools, Some(vec![]));
    }

    #[test]
    fn turn_beats_session_beats_server() {
        let s = settings();
        let spec = SessionSpec {
            model: Some("session-model".into()),
            ..Default::default()
        };
        let plain = LaunchSpec::resolve(&s, &spec, &TurnOverrides::default());
        assert_eq!(plain.model.as_deref(), Some("session-model"));
        assert_eq!(plain.allowed_tools, vec!["Read", "Grep"]);
        assert_eq!(plain.max_turns, 25);
        let turn = TurnOverrides {
            model: Some("turn-model".into()),
            ..Default::default()
        };
        assert_eq!(
            LaunchSpec::resolve(&s, &spec, &turn).model.as_deref(),
            Some("turn-model")
        );
        let none = LaunchSpec::resolve(&s, &SessionSpec::default(), &TurnOverrides::default());
        assert_eq!(none.model.as_deref(), Some("server-model"));
    }

    #[test]
    fn explicit_empty_tool_list_overrides_default() {
        let spec = SessionSpec {
            allowed_tools: Some(vec![]),
            ..Default::default()
        };
        let launch = LaunchSpec::resolve(&settings(), &spec, &TurnOverrides::default());
        assert!(launch.allowed_tools.is_empty());
    }

    #[test]
    fn turn_system_is_appended() {
        let spec = SessionSpec {
            append_system_prompt: Some("base".into()),
            ..Default::default()
        };
        let turn = TurnOverrides {
            system: Some("extra".into()),
            ..Default::default()
        };
        let launch = LaunchSpec::resolve(&settings(), &spec, &turn);
        assert_eq!(
            launch.append_system_prompt.as_deref(),
            Some("base\n\nextra")
        );
    }

    fn template() -> Template {
        Template::parse(
            "rev",
            "description: d\n\
             system_prompt: TEMPLATE-PROMPT\n\
             max_turns: 7\n\
             permission_mode: plan\n\
             effort: high\n\
             allowed_tools: [Read, Grep]\n\
             disallowed_tools: [Write, Edit]\n\
             env: {MARK: t}\n\
             mcp_servers: {fs: {command: x}}\n",
        )
        .unwrap()
    }

    #[test]
    fn template_fills_what_the_request_left_unset() {
        let spec = SessionSpec::default().with_template(&template());
        assert_eq!(spec.template.as_deref(), Some("rev"));
        assert_eq!(
            spec.append_system_prompt.as_deref(),
            Some("TEMPLATE-PROMPT")
        );
        assert_eq!(spec.system_prompt, None);
        let launch = LaunchSpec::resolve(&settings(), &spec, &TurnOverrides::default());
        assert_eq!(launch.max_turns, 7);
        assert_eq!(launch.permission_mode, PermissionMode::Plan);
        assert_eq!(launch.effort, Some(Effort::High));
        assert_eq!(launch.allowed_tools, vec!["Read", "Grep"]);
        assert_eq!(launch.disallowed_tools, vec!["Write", "Edit"]);
        assert_eq!(launch.env["MARK"], "t");
        assert_eq!(launch.mcp_servers["fs"]["command"], "x");
        // What neither sets comes from the server.
        assert_eq!(launch.model.as_deref(), Some("server-model"));
    }

    #[test]
    fn explicit_request_fields_beat_the_template_even_when_empty() {
        let request = SessionSpec {
            model: Some("request-model".into()),
            max_turns: Some(2),
            permission_mode: Some(PermissionMode::AcceptEdits),
            allowed_tools: Some(vec![]),
            disallowed_tools: Some(vec![]),
            append_system_prompt: Some("REQUEST-PROMPT".into()),
            env: Some(BTreeMap::new()),
            ..Default::default()
        };
        let spec = request.with_template(&template());
        let launch = LaunchSpec::resolve(&settings(), &spec, &TurnOverrides::default());
        assert_eq!(launch.model.as_deref(), Some("request-model"));
        assert_eq!(launch.max_turns, 2);
        assert_eq!(launch.permission_mode, PermissionMode::AcceptEdits);
        assert!(launch.allowed_tools.is_empty(), "explicit [] overrides");
        assert!(launch.disallowed_tools.is_empty(), "explicit [] overrides");
        assert!(launch.env.is_empty());
        assert_eq!(
            launch.append_system_prompt.as_deref(),
            Some("REQUEST-PROMPT")
        );
        // Untouched fields still come from the template.
        assert_eq!(launch.effort, Some(Effort::High));
    }

    #[test]
    fn a_replacing_template_prompt_fills_system_prompt() {
        let mut t = template();
        t.replace_system_prompt = true;
        let spec = SessionSpec::default().with_template(&t);
        assert_eq!(spec.system_prompt.as_deref(), Some("TEMPLATE-PROMPT"));
        assert_eq!(spec.append_system_prompt, None);
        // The request's own replacement wins over the template's.
        let spec = SessionSpec {
            system_prompt: Some("MINE".into()),
            ..Default::default()
        }
        .with_template(&t);
        assert_eq!(spec.system_prompt.as_deref(), Some("MINE"));
    }

    #[test]
    fn a_stored_spec_without_the_new_fields_still_reads() {
        let spec: SessionSpec = serde_json::from_str(r#"{"model":"m"}"#).unwrap();
        assert_eq!(spec.env, None);
        assert_eq!(spec.mcp_servers, None);
    }
}
