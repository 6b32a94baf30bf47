//! The command line and environment of a session's CLI process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::domain::session::PermissionMode;
use crate::spec::LaunchSpec;

/// How the process relates to the CLI's stored conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// First process of a session: fix the CLI's session id up front.
    New(String),
    /// A later process: continue the stored transcript.
    Resume(String),
}

/// Everything needed to start one CLI process.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    pub cli_path: PathBuf,
    pub workspace: PathBuf,
    /// Per-tenant CLI state (transcripts, settings), kept apart from other tenants.
    pub config_dir: PathBuf,
    /// Already filtered through the allowlist.
    pub env: BTreeMap<String, String>,
    /// The model gateway's address and this process's token; set last, so
    /// nothing else can point the CLI at another model or credential.
    pub model_env: BTreeMap<String, String>,
    pub spec: LaunchSpec,
    pub conversation: Conversation,
    /// `RLIMIT_FSIZE` of the process and everything it starts: no file it
    /// writes grows past this (the tenant's disk quota).
    pub file_size_max: Option<u64>,
}

/// The argv after the program name. Valued flags use the `--flag=value`
/// form so a value starting with `-` can never be read as a flag.
pub fn args(spec: &LaunchSpec, conversation: &Conversation) -> Vec<String> {
    let mut args: Vec<String> = [
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        // `transcript_mirror` frames: the transcript's new lines, stored in
        // the database so a missing file can be rebuilt before `--resume`.
        "--session-mirror",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--permission-mode={}", spec.permission_mode));
    if spec.permission_mode == PermissionMode::Default {
        // Tool calls that need permission are asked over stdin/stdout as
        // `can_use_tool` control requests, answered by the API's approvals.
        args.push("--permission-prompt-tool=stdio".into());
    }
    args.push(format!("--max-turns={}", spec.max_turns));
    if let Some(model) = &spec.model {
        args.push(format!("--model={model}"));
    }
    if let Some(prompt) = &spec.system_prompt {
        args.push(format!("--system-prompt={prompt}"));
    }
    if let Some(prompt) = &spec.append_system_prompt {
        args.push(format!("--append-system-prompt={prompt}"));
    }
    if let Some(effort) = spec.effort {
        args.push(format!("--effort={}", effort.as_str()));
    }
    if !spec.allowed_tools.is_empty() {
        // `--allowedTools` only pre-approves; `--tools` is what limits the
        // built-in tools the model is offered at all.
        let available = available_tools(&spec.allowed_tools);
        if !available.is_empty() {
            args.push(format!("--tools={}", available.join(",")));
        }
        args.push(format!("--allowedTools={}", spec.allowed_tools.join(",")));
    }
    if !spec.disallowed_tools.is_empty() {
        args.push(format!(
            "--disallowedTools={}",
            spec.disallowed_tools.join(",")
        ));
    }
    if !spec.mcp_servers.is_empty() {
        // Remote servers as SDK servers: their traffic comes to the server
        // over the CLI's pipe (see `domain::mcp`).
        let config = crate::domain::mcp::cli_config(&spec.mcp_servers);
        args.push(format!("--mcp-config={config}"));
    }
    if !spec.web_fetch_preflight {
        args.push(r#"--settings={"skipWebFetchPreflight":true}"#.into());
    }
    if spec.strict_mcp_config {
        // Only the servers given through the API, never the workspace's
        // `.mcp.json` (which the agent may write) unless asked for.
        args.push("--strict-mcp-config".into());
    }
    if let Some(micros) = spec.max_budget_micros {
        args.push(format!(
            "--max-budget-usd={:.6}",
            micros as f64 / 1_000_000.0
        ));
    }
    if let Some(schema) = &spec.json_schema {
        args.push(format!("--json-schema={schema}"));
    }
    for dir in &spec.add_dirs {
        args.push(format!("--add-dir={}", dir.display()));
    }
    match conversation {
        Conversation::New(id) => args.push(format!("--session-id={id}")),
        Conversation::Resume(id) => args.push(format!("--resume={id}")),
    }
    args
}

/// The built-in tools named by allowed-tool rules: `Bash(git:*)` → `Bash`.
/// MCP tools (`mcp__…`) are not built-in and stay governed by their server.
fn available_tools(rules: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for rule in rules {
        let name = rule.split('(').next().unwrap_or("").trim();
        if !name.is_empty() && !name.starts_with("mcp__") && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The environment of the process: the allowlisted server variables, the
/// session's own (template) variables, then what the server itself decides.
pub fn env(plan: &LaunchPlan) -> BTreeMap<String, String> {
    let mut env = plan.env.clone();
    env.extend(plan.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.retain(|name, _| !crate::config::MODEL_ACCESS_NAMES.contains(&name.as_str()));
    env.extend(plan.model_env.clone());
    env.insert(
        "CLAUDE_CONFIG_DIR".into(),
        plan.config_dir.to_string_lossy().into_owned(),
    );
    // No title generation or telemetry: fewer model calls per turn.
    env.entry("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into())
        .or_insert_with(|| "1".into());
    env.insert("PWD".into(), plan.workspace.to_string_lossy().into_owned());
    // The CLI refuses bypassPermissions as root unless told it is sandboxed;
    // choosing that mode for the server is the operator's explicit decision.
    if plan.spec.permission_mode == PermissionMode::BypassPermissions {
        env.insert("IS_SANDBOX".into(), "1".into());
    }
    env
}

/// The transcript file the CLI keeps for a conversation started in `cwd`.
pub fn transcript_path(config_dir: &Path, cwd: &Path, cli_session_id: &str) -> PathBuf {
    let (folder, file) = transcript_location(cwd, cli_session_id);
    config_dir.join(folder).join(file)
}

/// The transcript's folder (relative to the CLI state folder) and file name.
pub fn transcript_location(cwd: &Path, cli_session_id: &str) -> (PathBuf, String) {
    let key: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    (
        Path::new("projects").join(key),
        format!("{cli_session_id}.jsonl"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::Effort;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            model: Some("-evil".into()),
            system_prompt: None,
            append_system_prompt: Some("be brief".into()),
            max_turns: 7,
            permission_mode: PermissionMode::AcceptEdits,
            effort: Some(Effort::High),
            allowed_tools: vec!["Read".into(), "Bash(git:*)".into()],
            disallowed_tools: vec![],
            env: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            strict_mcp_config: false,
            max_budget_micros: Some(250_000),
            add_dirs: vec!["/srv/shared".into()],
            json_schema: Some(serde_json::json!({"type": "object"})),
            agents: BTreeMap::new(),
            web_fetch_preflight: true,
        }
    }

    #[test]
    fn args_use_equals_form_and_stream_json() {
        let a = args(&spec(), &Conversation::Resume("abc".into()));
        assert_eq!(
            &a[..7],
            [
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--session-mirror"
            ]
        );
        assert!(a.contains(&"--model=-evil".to_string()));
        assert!(a.contains(&"--permission-mode=acceptEdits".to_string()));
        assert!(a.contains(&"--max-turns=7".to_string()));
        assert!(a.contains(&"--effort=high".to_string()));
        assert!(a.contains(&"--allowedTools=Read,Bash(git:*)".to_string()));
        assert!(a.contains(&"--append-system-prompt=be brief".to_string()));
        assert!(a.contains(&"--resume=abc".to_string()));
        assert!(a.contains(&"--max-budget-usd=0.250000".to_string()));
        assert!(a.contains(&"--add-dir=/srv/shared".to_string()));
        assert!(a.contains(&r#"--json-schema={"type":"object"}"#.to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--disallowedTools")));
        assert!(a.contains(&"--tools=Read,Bash".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--mcp-config")));
        assert!(!a.contains(&"--strict-mcp-config".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--settings")));
    }

    #[test]
    fn mcp_servers_become_an_mcp_config_strict_when_asked() {
        let mut s = spec();
        s.mcp_servers.insert(
            "fs".into(),
            serde_json::json!({"command": "srv", "args": ["-x"]}),
        );
        let a = args(&s, &Conversation::New("id".into()));
        let config = a
            .iter()
            .find_map(|x| x.strip_prefix("--mcp-config="))
            .expect("--mcp-config");
        let config: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(config["mcpServers"]["fs"]["command"], "srv");
        assert!(!a.contains(&"--strict-mcp-config".to_string()));
        s.strict_mcp_config = true;
        let a = args(&s, &Conversation::New("id".into()));
        assert!(a.contains(&"--strict-mcp-config".to_string()));
        // Strict without servers of its own: no server at all.
        s.mcp_servers.clear();
        let a = args(&s, &Conversation::New("id".into()));
        assert!(a.contains(&"--strict-mcp-config".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--mcp-config")));
    }

    #[test]
    fn available_tools_are_the_rules_base_names() {
        let rules: Vec<String> = [
            "Read",
            "Bash(git diff:*)",
            "Bash(git log:*)",
            "mcp__fs__read",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(available_tools(&rules), ["Read", "Bash"]);
    }

    #[test]
    fn session_env_is_added_but_server_variables_win() {
        let mut s = spec();
        s.permission_mode = PermissionMode::BypassPermissions;
        s.env.insert("TEMPLATE_MARK".into(), "1".into());
        s.env
            .insert("CLAUDE_CONFIG_DIR".into(), "/elsewhere".into());
        s.env
            .insert("ANTHROPIC_BASE_URL".into(), "http://elsewhere".into());
        s.env.insert("ANTHROPIC_API_KEY".into(), "sk-real".into());
        let plan = LaunchPlan {
            cli_path: "claude".into(),
            workspace: "/ws".into(),
            config_dir: "/cfg".into(),
            env: BTreeMap::from([("PATH".to_string(), "/bin".to_string())]),
            model_env: BTreeMap::from([(
                "ANTHROPIC_BASE_URL".to_string(),
                "http://127.0.0.1:1".to_string(),
            )]),
            spec: s,
            conversation: Conversation::New("id".into()),
            file_size_max: None,
        };
        let e = env(&plan);
        assert_eq!(e["TEMPLATE_MARK"], "1");
        assert_eq!(e["PATH"], "/bin");
        assert_eq!(e["CLAUDE_CONFIG_DIR"], "/cfg");
        assert_eq!(e["IS_SANDBOX"], "1");
        // The gateway's address wins over a template's, and no other
        // credential reaches the CLI.
        assert_eq!(e["ANTHROPIC_BASE_URL"], "http://127.0.0.1:1");
        assert!(!e.contains_key("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn transcript_path_mangles_cwd() {
        let p = transcript_path(Path::new("/cfg"), Path::new("/srv/ws_x.y z"), "id");
        assert_eq!(p, Path::new("/cfg/projects/-srv-ws-x-y-z/id.jsonl"));
    }
}
