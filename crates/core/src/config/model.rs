//! `settings.model`: where the model API is, and the server's own
//! credential for it. None of it reaches the CLI, which talks to the model
//! gateway with a per-process token.

use std::path::{Path, PathBuf};

use super::parse::Env;
use super::{ConfigError, Secret};

#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// `ANTHROPIC_BASE_URL`: the model API the gateway forwards to.
    pub base_url: String,
    /// `ANTHROPIC_API_KEY`.
    pub api_key: Option<Secret>,
    /// `ANTHROPIC_AUTH_TOKEN`: a bearer token (e.g. of an LLM proxy).
    pub auth_token: Option<Secret>,
    /// `CLAUDE_CODE_OAUTH_TOKEN`: a long-lived token from `claude setup-token`.
    pub oauth_token: Option<Secret>,
    /// `ANTHROPIC_CUSTOM_HEADERS`: extra `Name: value` lines sent upstream.
    pub custom_headers: Vec<(String, String)>,
    /// The server user's Claude config folder (`CLAUDE_CONFIG_DIR`, else
    /// `~/.claude`): its `.credentials.json` is the `claude auth login`.
    pub login_dir: Option<PathBuf>,
    /// `CLAUDE_OAUTH_TOKEN_URL`: where a login's access token is refreshed.
    pub oauth_token_url: String,
    /// `MODEL_GATEWAY_ADDR`: the gateway's loopback address (`127.0.0.1:0`:
    /// any free port).
    pub gateway_addr: String,
    /// `MODEL_PRICES_FILE`: the price table instead of the built-in one.
    pub prices_file: Option<PathBuf>,
}

impl ModelSettings {
    pub(super) fn read(env: &Env) -> Result<ModelSettings, ConfigError> {
        let base_url = env.string("ANTHROPIC_BASE_URL");
        if url::Url::parse(&base_url).is_err() {
            return Err(env.error("ANTHROPIC_BASE_URL", &base_url, "expected an http(s) URL"));
        }
        Ok(ModelSettings {
            base_url,
            api_key: env.get("ANTHROPIC_API_KEY").map(Secret),
            auth_token: env.get("ANTHROPIC_AUTH_TOKEN").map(Secret),
            oauth_token: env.get("CLAUDE_CODE_OAUTH_TOKEN").map(Secret),
            custom_headers: custom_headers(env)?,
            login_dir: env.path("CLAUDE_CONFIG_DIR").or_else(|| {
                env.system("HOME")
                    .map(|home| Path::new(&home).join(".claude"))
            }),
            oauth_token_url: env.string("CLAUDE_OAUTH_TOKEN_URL"),
            gateway_addr: env.string("MODEL_GATEWAY_ADDR"),
            prices_file: env.path("MODEL_PRICES_FILE"),
        })
    }
}

/// `Name: value` lines (newline-separated), as the CLI reads them.
fn custom_headers(env: &Env) -> Result<Vec<(String, String)>, ConfigError> {
    let name = "ANTHROPIC_CUSTOM_HEADERS";
    let Some(raw) = env.get(name) else {
        return Ok(Vec::new());
    };
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok((name.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(env.error(name, line, "expected one `Name: value` per line")),
        })
        .collect()
}
