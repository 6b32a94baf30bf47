//! Agent templates: one YAML file per template. The shipped set is compiled
//! into the binary (so a copied or packaged binary has it); `TEMPLATES_DIR`,
//! or a `templates/` folder in the working directory, replaces it. Loaded at
//! start and on `POST /templates/reload`. A file that does not parse, or
//! names a field no template has, is an error naming the file: at start it
//! stops the server, on reload the previous set stays in force.
//!
//! A template only fills in a new session's spec; how it combines with the
//! request and the server defaults is decided in `spec.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::session::{Effort, PermissionMode};

/// Environment names the server sets itself; a template cannot change them.
const RESERVED_ENV: &[&str] = &["CLAUDE_CONFIG_DIR", "PWD", "IS_SANDBOX"];

/// One agent template, as written in `templates/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The file stem; not a field of the file.
    #[serde(default, deserialize_with = "refuse_name_field")]
    pub name: String,
    /// One line saying what the agent is for.
    pub description: String,
    /// NOTE: unlike a session's `system_prompt` (which replaces Claude
    /// Code's own prompt), a template's `system_prompt` is APPENDED to Claude
    /// Code's own prompt unless `replace_system_prompt` is true, when it
    /// replaces it. A template file should say which it means:
    /// `append_system_prompt:` to append (folded into this field on load, so
    /// responses keep their shape), or `system_prompt:` with
    /// `replace_system_prompt: true` to replace. A bare `system_prompt:`
    /// still appends, as it always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// `system_prompt` replaces Claude Code's own prompt instead of being
    /// appended to it (a session's `system_prompt`), rather than being its
    /// `append_system_prompt`.
    #[serde(default)]
    pub replace_system_prompt: bool,
    /// In a template file only: appended to Claude Code's own system prompt,
    /// as a session's `append_system_prompt` is. Moved into `system_prompt`
    /// (with `replace_system_prompt: false`) when the file is read; never
    /// part of a response.
    #[serde(default, skip_serializing)]
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
        deserialize_with = "crate::domain::session::tool_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "crate::domain::session::tool_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub disallowed_tools: Option<Vec<String>>,
    /// MCP servers by name, each as Claude Code's `mcpServers` entries
    /// (`{command, args, env}` or `{type: http, url}`); `env` and `headers`
    /// values are `[redacted]` except to admin keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<BTreeMap<String, Value>>,
    /// Extra environment of this template's CLI processes only; values are
    /// `[redacted]` except to admin keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Subagents by name (`{description, prompt, tools?, model?}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<BTreeMap<String, crate::domain::agent::AgentSpec>>,
    /// `false`: the CLI also uses the workspace's `.mcp.json` servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mcp_config: Option<bool>,
}

/// A template is named by its file; a `name:` field would be ignored, so it
/// is refused like any unknown field.
fn refuse_name_field<'de, D: serde::Deserializer<'de>>(_: D) -> Result<String, D::Error> {
    Err(serde::de::Error::custom(
        "unknown field `name`: a template is named by its file",
    ))
}

/// A template file that cannot be used, named by its path.
#[derive(Debug, Clone, thiserror::Error)]
#[error("template {}: {message}", file.display())]
pub struct TemplateError {
    pub file: PathBuf,
    pub message: String,
}

/// Template names follow session names: `[A-Za-z0-9._-]`, no leading dot.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    /// As clients other than admins see it: credentials redacted.
    pub fn redacted(mut self) -> Template {
        crate::redact::credentials(&mut self.env, &mut self.mcp_servers);
        self
    }

    /// Parses one file's text; `name` is its stem.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let mut template: Template = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        template.name = name.to_owned();
        template.validate()?;
        if let Some(append) = template.append_system_prompt.take() {
            template.system_prompt = Some(append);
        }
        Ok(template)
    }

    fn validate(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "invalid template name {:?}: use A-Z a-z 0-9 . _ - not starting with '.'",
                self.name
            ));
        }
        if self.description.trim().is_empty() {
            return Err("field `description` must not be empty".into());
        }
        if self.max_turns == Some(0) {
            return Err("field `max_turns` must be at least 1".into());
        }
        if self.append_system_prompt.is_some() {
            if self.system_prompt.is_some() {
                return Err(
                    "fields `append_system_prompt` and `system_prompt`: use one \
                     (`system_prompt` with `replace_system_prompt: true` replaces Claude Code's \
                     prompt, `append_system_prompt` adds to it)"
                        .into(),
                );
            }
            if self.replace_system_prompt {
                return Err("field `replace_system_prompt` applies to `system_prompt`; \
                     `append_system_prompt` always appends"
                    .into());
            }
        } else if self.replace_system_prompt && self.system_prompt.is_none() {
            return Err("field `replace_system_prompt` needs a `system_prompt`".into());
        }
        for name in self.env.iter().flat_map(|e| e.keys()) {
            if !valid_env_name(name) {
                return Err(format!("field `env`: invalid variable name {name:?}"));
            }
            if RESERVED_ENV.contains(&name.as_str()) {
                return Err(format!(
                    "field `env`: {name} is set by the server and cannot be changed"
                ));
            }
        }
        if let Some(agents) = &self.agents {
            crate::domain::agent::validate("field `agents`", agents)?;
        }
        for (name, server) in self.mcp_servers.iter().flatten() {
            if !server.is_object() {
                return Err(format!(
                    "field `mcp_servers`: server {name:?} must be a mapping (command/args/env or type/url)"
                ));
            }
        }
        Ok(())
    }
}

/// The shipped templates, `(name, YAML)`, compiled in from `templates/`
/// (a unit test keeps this list and the folder equal).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "api-designer",
        include_str!("../../../templates/api-designer.yaml"),
    ),
    (
        "architect",
        include_str!("../../../templates/architect.yaml"),
    ),
    (
        "code-reviewer",
        include_str!("../../../templates/code-reviewer.yaml"),
    ),
    (
        "data-engineer",
        include_str!("../../../templates/data-engineer.yaml"),
    ),
    ("debug", include_str!("../../../templates/debug.yaml")),
    ("devops", include_str!("../../../templates/devops.yaml")),
    ("docs", include_str!("../../../templates/docs.yaml")),
    ("frontend", include_str!("../../../templates/frontend.yaml")),
    (
        "performance",
        include_str!("../../../templates/performance.yaml"),
    ),
    ("refactor", include_str!("../../../templates/refactor.yaml")),
    ("security", include_str!("../../../templates/security.yaml")),
    (
        "test-writer",
        include_str!("../../../templates/test-writer.yaml"),
    ),
];

/// The templates compiled into the binary.
pub fn built_in() -> Result<BTreeMap<String, Template>, TemplateError> {
    BUILT_IN
        .iter()
        .map(|(name, text)| {
            Template::parse(name, text)
                .map(|t| (name.to_string(), t))
                .map_err(|message| TemplateError {
                    file: PathBuf::from(format!("(built-in) {name}.yaml")),
                    message,
                })
        })
        .collect()
}

/// Reads every `*.yaml` / `*.yml` file of `dir`. The first bad file fails
/// the whole load, and so does a folder that is missing or holds none: a
/// folder that was asked for and gives no template is a mistake.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Template>, TemplateError> {
    let err = |file: &Path, message: String| TemplateError {
        file: file.to_path_buf(),
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(dir, "the templates folder does not exist".into()))
        }
        Err(e) => return Err(err(dir, format!("cannot read the folder: {e}"))),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err(
            dir,
            "the templates folder holds no *.yaml template".into(),
        ));
    }
    let mut templates = BTreeMap::new();
    for file in files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| err(&file, "the file name is not UTF-8".into()))?
            .to_owned();
        let text = std::fs::read_to_string(&file).map_err(|e| err(&file, e.to_string()))?;
        let template = Template::parse(&name, &text).map_err(|m| err(&file, m))?;
        if templates.insert(name.clone(), template).is_some() {
            return Err(err(
                &file,
                format!("a template named {name:?} is defined twice (.yaml and .yml)"),
            ));
        }
    }
    Ok(templates)
}

/// Where the templates in force come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The set compiled into the binary.
    BuiltIn,
    /// A folder (`TEMPLATES_DIR`, or `templates/` in the working directory).
    Dir(PathBuf),
}

impl Source {
    /// Where `settings` put the templates: `TEMPLATES_DIR`, else
    /// `templates/` in `cwd` when there is one, else the built-in set.
    pub fn of(settings: &crate::config::SessionSettings, cwd: &Path) -> Source {
        if let Some(dir) = &settings.templates_dir {
            return Source::Dir(crate::config::absolute_from(cwd, dir));
        }
        let local = cwd.join("templates");
        if local.is_dir() {
            Source::Dir(local)
        } else {
            Source::BuiltIn
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in"),
            Source::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// The templates in force; swapped whole on reload.
#[derive(Debug)]
pub struct Templates {
    source: Source,
    current: RwLock<Arc<BTreeMap<String, Template>>>,
}

impl Templates {
    /// Loads `dir`; a bad file, or no template at all, is an error naming it.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        Templates::from_source(Source::Dir(dir.to_path_buf()))
    }

    fn from_source(source: Source) -> Result<Templates, TemplateError> {
        let set = read(&source)?;
        Ok(Templates {
            source,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The templates `settings` name: `TEMPLATES_DIR`, else `templates/`
    /// in the working directory, else the built-in set.
    pub fn from_settings(
        settings: &crate::config::SessionSettings,
    ) -> Result<Templates, TemplateError> {
        let cwd = std::env::current_dir().unwrap_or_default();
        Templates::from_source(Source::of(settings, &cwd))
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Every template, by name.
    pub fn all(&self) -> Arc<BTreeMap<String, Template>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn get(&self, name: &str) -> Option<Template> {
        self.all().get(name).cloned()
    }

    /// Re-reads the folder (blocking). On error the previous set stays.
    pub fn reload(&self) -> Result<usize, TemplateError> {
        let fresh = read(&self.source)?;
        let count = fresh.len();
        let fresh = Arc::new(fresh);
        match self.current.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(count)
    }
}

fn read(source: &Source) -> Result<BTreeMap<String, Template>, TemplateError> {
    match source {
        Source::BuiltIn => built_in(),
        Source::Dir(dir) => load_dir(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_field_is_refused() {
        let err = Template::parse("rev", "name: other\ndescription: x\n").unwrap_err();
        assert!(err.contains("unknown field `name`"), "{err}");
    }

    #[test]
    fn a_full_template_parses() {
        let t = Template::parse(
            "rev",
            "description: Reviews code\n\
             system_prompt: |\n  You review.\n\
             model: claude-x\n\
             max_turns: 5\n\
             permission_mode: plan\n\
             effort: high\n\
             allowed_tools: [Read, Grep]\n\
             disallowed_tools: Write, Edit\n\
             mcp_servers:\n  fs:\n    command: npx\n    args: [-y, server]\n\
             env:\n  MY_FLAG: '1'\n",
        )
        .unwrap();
        assert_eq!(t.name, "rev");
        assert_eq!(t.system_prompt.as_deref(), Some("You review.\n"));
        assert!(!t.replace_system_prompt);
        assert_eq!(t.max_turns, Some(5));
        assert_eq!(t.permission_mode, Some(PermissionMode::Plan));
        assert_eq!(t.effort, Some(Effort::High));
        assert_eq!(t.allowed_tools, Some(vec!["Read".into(), "Grep".into()]));
        assert_eq!(
            t.disallowed_tools,
            Some(vec!["Write".into(), "Edit".into()])
        );
        assert_eq!(t.mcp_servers.unwrap()["fs"]["args"][1], "server");
        assert_eq!(t.env.unwrap()["MY_FLAG"], "1");
    }

    #[test]
    fn append_system_prompt_is_the_explicit_name_of_an_appended_prompt() {
        let explicit = Template::parse("a", "description: d\nappend_system_prompt: ADD\n").unwrap();
        let legacy = Template::parse("a", "description: d\nsystem_prompt: ADD\n").unwrap();
        // The same template either way: appended, and shown as before.
        assert_eq!(explicit, legacy);
        assert_eq!(explicit.system_prompt.as_deref(), Some("ADD"));
        assert!(!explicit.replace_system_prompt);
        let shown = serde_json::to_value(&explicit).unwrap();
        assert_eq!(shown["system_prompt"], "ADD");
        assert!(shown.get("append_system_prompt").is_none(), "{shown}");
        let spec = crate::domain::session::SessionSpec::default().with_template(&explicit);
        assert_eq!(spec.append_system_prompt.as_deref(), Some("ADD"));
        assert_eq!(spec.system_prompt, None);
        // Replacing is still `system_prompt` + `replace_system_prompt: true`.
        let replacing = Template::parse(
            "r",
            "description: d\nsystem_prompt: ONLY\nreplace_system_prompt: true\n",
        )
        .unwrap();
        let spec = crate::domain::session::SessionSpec::default().with_template(&replacing);
        assert_eq!(spec.system_prompt.as_deref(), Some("ONLY"));
        assert_eq!(spec.append_system_prompt, None);
        // Both names, or the explicit one with replace: ambiguous, refused.
        let e = Template::parse(
            "x",
            "description: d\nappend_system_prompt: A\nsystem_prompt: B\n",
        )
        .unwrap_err();
        assert!(e.contains("append_system_prompt"), "{e}");
        let e = Template::parse(
            "x",
            "description: d\nappend_system_prompt: A\nreplace_system_prompt: true\n",
        )
        .unwrap_err();
        assert!(e.contains("replace_system_prompt"), "{e}");
    }

    #[test]
    fn shipped_templates_say_append_system_prompt() {
        for (name, text) in BUILT_IN {
            assert!(
                !text.lines().any(|l| l.starts_with("system_prompt:")),
                "templates/{name}.yaml: name the appended prompt `append_system_prompt`"
            );
        }
    }

    #[test]
    fn unknown_and_bad_fields_are_named() {
        let e = Template::parse("x", "description: d\nsystem_promt: typo\n").unwrap_err();
        assert!(e.contains("system_promt"), "{e}");
        let e = Template::parse("x", "system_prompt: p\n").unwrap_err();
        assert!(e.contains("description"), "{e}");
        let e = Template::parse("x", "description: d\npermission_mode: yolo\n").unwrap_err();
        assert!(e.contains("yolo"), "{e}");
        let e = Template::parse("x", "description: d\nmax_turns: 0\n").unwrap_err();
        assert!(e.contains("max_turns"), "{e}");
        let e = Template::parse("x", "description: d\nenv:\n  PWD: /\n").unwrap_err();
        assert!(e.contains("PWD"), "{e}");
        let e = Template::parse("x", "description: d\nenv:\n  'A-B': x\n").unwrap_err();
        assert!(e.contains("A-B"), "{e}");
        let e = Template::parse("x", "description: d\nreplace_system_prompt: true\n").unwrap_err();
        assert!(e.contains("replace_system_prompt"), "{e}");
        let e = Template::parse("x", "description: d\nmcp_servers:\n  a: 3\n").unwrap_err();
        assert!(e.contains("mcp_servers"), "{e}");
    }

    #[test]
    fn load_names_the_bad_file_and_reload_keeps_the_old_set() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "description: A\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let templates = Templates::load(dir.path()).unwrap();
        assert_eq!(templates.all().len(), 1);
        std::fs::write(dir.path().join("b.yml"), "description: B\nbogus: 1\n").unwrap();
        let e = templates.reload().unwrap_err();
        assert!(e.to_string().contains("b.yml"), "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
        assert_eq!(templates.all().len(), 1, "old set kept");
        std::fs::write(dir.path().join("b.yml"), "description: B\n").unwrap();
        assert_eq!(templates.reload().unwrap(), 2);
        assert!(templates.get("b").is_some());
        let e = Templates::load(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = Templates::load(empty.path()).unwrap_err();
        assert!(e.to_string().contains("holds no"), "{e}");
        let vars = |v: &str| {
            std::collections::BTreeMap::from([("TEMPLATES_DIR".to_string(), v.to_string())])
        };
        let missing = dir.path().join("missing").to_string_lossy().into_owned();
        let settings = crate::config::Settings::from_vars(&vars(&missing)).unwrap();
        let e = Templates::from_settings(&settings.sessions).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let here = dir.path().to_string_lossy().into_owned();
        let settings = crate::config::Settings::from_vars(&vars(&here)).unwrap();
        assert_eq!(
            Templates::from_settings(&settings.sessions)
                .unwrap()
                .all()
                .len(),
            2
        );
    }

    #[test]
    fn the_built_in_set_is_the_shipped_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
        assert_eq!(built_in().unwrap(), load_dir(&dir).unwrap());
    }

    #[test]
    fn the_source_is_the_setting_then_the_working_directory_then_built_in() {
        let cwd = tempfile::tempdir().unwrap();
        let none = crate::config::Settings::from_vars(&BTreeMap::new())
            .unwrap()
            .sessions;
        assert_eq!(Source::of(&none, cwd.path()), Source::BuiltIn);
        let t = Templates::from_source(Source::of(&none, cwd.path())).unwrap();
        assert_eq!(t.all().len(), BUILT_IN.len());
        assert_eq!(t.source().to_string(), "built-in");

        std::fs::create_dir(cwd.path().join("templates")).unwrap();
        let local = Source::Dir(cwd.path().join("templates"));
        assert_eq!(Source::of(&none, cwd.path()), local);
        // Present but empty: a mistake, not "no templates".
        assert!(Templates::from_source(local).is_err());

        let vars = BTreeMap::from([("TEMPLATES_DIR".to_string(), "/t".to_string())]);
        let set = crate::config::Settings::from_vars(&vars).unwrap().sessions;
        assert_eq!(Source::of(&set, cwd.path()), Source::Dir("/t".into()));
    }

    #[test]
    fn shipped_templates_load_and_have_real_policies() {
        let all = built_in().unwrap();
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "api-designer",
                "architect",
                "code-reviewer",
                "data-engineer",
                "debug",
                "devops",
                "docs",
                "frontend",
                "performance",
                "refactor",
                "security",
                "test-writer"
            ]
        );
        for t in all.values() {
            assert!(t.system_prompt.is_some(), "{}", t.name);
            assert!(t.permission_mode.is_some(), "{}", t.name);
            assert!(t.effort.is_some(), "{}", t.name);
            assert!(t.max_turns.is_some(), "{}", t.name);
            assert!(
                t.allowed_tools.is_some() || t.disallowed_tools.is_some(),
                "{} has no tool policy",
                t.name
            );
        }
        let denied = |name: &str| all[name].disallowed_tools.clone().unwrap_or_default();
        let allowed = |name: &str| all[name].allowed_tools.clone().unwrap_or_default();
        for tool in ["Write", "Edit"] {
            assert!(
                denied("code-reviewer").iter().any(|t| t == tool)
                    && !allowed("code-reviewer").iter().any(|t| t == tool)
            );
        }
        assert!(denied("docs").iter().any(|t| t == "Bash"));
        assert!(!allowed("docs").iter().any(|t| t.starts_with("Bash")));
    }
}
