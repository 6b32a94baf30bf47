//! Model credentials: the server's (detected once at start), a tenant's own,
//! and how each is put on an upstream request. The CLI login is read from
//! its credentials file at each use and refreshed here when it expires, so
//! every CLI process of every tenant shares the one login.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::config::ModelSettings;

/// The CLI's public OAuth client id (the one `claude auth login` uses).
const CLI_OAUTH_CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
/// A login token this close to its expiry is refreshed before use.
const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;

/// How a credential is presented to the model API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `x-api-key`.
    ApiKey,
    /// `Authorization: Bearer`, e.g. for an LLM proxy.
    AuthToken,
    /// `Authorization: Bearer` of a Claude subscription (login or `setup-token`).
    OauthToken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApiKey => "api_key",
            Kind::AuthToken => "auth_token",
            Kind::OauthToken => "oauth_token",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "api_key" => Some(Kind::ApiKey),
            "auth_token" => Some(Kind::AuthToken),
            "oauth_token" => Some(Kind::OauthToken),
            _ => None,
        }
    }

    /// The variable through which the CLI is handed its per-process token,
    /// so that it behaves as it would with a real credential of this kind
    /// (an OAuth token makes it ask for the subscription's betas).
    pub fn cli_variable(self) -> &'static str {
        match self {
            Kind::ApiKey => "ANTHROPIC_API_KEY",
            Kind::AuthToken => "ANTHROPIC_AUTH_TOKEN",
            Kind::OauthToken => "CLAUDE_CODE_OAUTH_TOKEN",
        }
    }
}

/// A credential the gateway can put on a request.
#[derive(Clone)]
pub enum Credential {
    Static { kind: Kind, secret: String },
    Login(Arc<Login>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Static { kind, .. } => write!(f, "Credential::{}(***)", kind.as_str()),
            Credential::Login(login) => write!(f, "Credential::Login({:?})", login.path),
        }
    }
}

impl Credential {
    pub fn kind(&self) -> Kind {
        match self {
            Credential::Static { kind, .. } => *kind,
            Credential::Login(_) => Kind::OauthToken,
        }
    }

    /// The header that carries it: `(name, value)`.
    pub async fn header(&self) -> Result<(&'static str, String), String> {
        let (kind, secret) = match self {
            Credential::Static { kind, secret } => (*kind, secret.clone()),
            Credential::Login(login) => (Kind::OauthToken, login.access_token().await?),
        };
        Ok(match kind {
            Kind::ApiKey => ("x-api-key", secret),
            Kind::AuthToken | Kind::OauthToken => ("authorization", format!("Bearer {secret}")),
        })
    }
}

/// Where the server's own credential came from (shown by `/health`, never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `ANTHROPIC_API_KEY`.
    ApiKey,
    /// `ANTHROPIC_AUTH_TOKEN`.
    AuthToken,
    /// `CLAUDE_CODE_OAUTH_TOKEN`.
    OauthToken,
    /// The `.credentials.json` of `claude auth login`.
    CliLogin,
    None,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::ApiKey => "api_key",
            Source::AuthToken => "auth_token",
            Source::OauthToken => "oauth_token",
            Source::CliLogin => "cli_login",
            Source::None => "none",
        }
    }
}

/// The server's credential: the environment first (as the CLI itself
/// prefers an API key), then the operator's CLI login.
pub fn detect(settings: &ModelSettings, client: &reqwest::Client) -> (Source, Option<Credential>) {
    let from_env = [
        (Source::ApiKey, Kind::ApiKey, &settings.api_key),
        (Source::AuthToken, Kind::AuthToken, &settings.auth_token),
        (Source::OauthToken, Kind::OauthToken, &settings.oauth_token),
    ];
    for (source, kind, value) in from_env {
        if let Some(secret) = value {
            let credential = Credential::Static {
                kind,
                secret: secret.0.clone(),
            };
            return (source, Some(credential));
        }
    }
    if let Some(dir) = &settings.login_dir {
        let path = dir.join(".credentials.json");
        if read_login(&path).is_ok() {
            let login = Login {
                path,
                token_url: settings.oauth_token_url.clone(),
                client: client.clone(),
                state: tokio::sync::Mutex::new(None),
            };
            return (Source::CliLogin, Some(Credential::Login(Arc::new(login))));
        }
    }
    (Source::None, None)
}

/// The operator's `claude auth login`, read from its credentials file.
pub struct Login {
    pub path: PathBuf,
    token_url: String,
    client: reqwest::Client,
    /// The token last read or refreshed, and the file time it was read at.
    state: tokio::sync::Mutex<Option<(Option<SystemTime>, OAuth)>>,
}

#[derive(Debug, Clone)]
struct OAuth {
    access_token: String,
    refresh_token: Option<String>,
    /// Milliseconds since the epoch.
    expires_at: Option<i64>,
    scopes: Vec<String>,
}

impl Login {
    /// A valid access token: the file's (re-read when it changed, so a
    /// refresh by any `claude` process of the same login is seen), refreshed
    /// here first when it is about to expire.
    pub async fn access_token(&self) -> Result<String, String> {
        let mut state = self.state.lock().await;
        let mtime = tokio::fs::metadata(&self.path)
            .await
            .and_then(|m| m.modified())
            .ok();
        if state.as_ref().is_none_or(|(seen, _)| *seen != mtime) {
            let path = self.path.clone();
            let oauth = crate::blocking::run(move || read_login(&path))
                .await
                .map_err(|e| e.to_string())??;
            *state = Some((mtime, oauth));
        }
        let Some((_, oauth)) = state.as_mut() else {
            return Err("no login".into());
        };
        let now = chrono::Utc::now().timestamp_millis();
        let expiring = oauth
            .expires_at
            .is_some_and(|t| t - now < REFRESH_MARGIN_MS);
        if expiring && oauth.refresh_token.is_some() {
            match self.refresh(oauth).await {
                Ok(fresh) => {
                    *oauth = fresh;
                    let written = self.write_back(oauth).await;
                    if let Err(e) = &written {
                        tracing::warn!(error = %e, file = %self.path.display(), "cannot store the refreshed login");
                    }
                    let mtime = tokio::fs::metadata(&self.path)
                        .await
                        .and_then(|m| m.modified())
                        .ok();
                    if let Some((seen, _)) = state.as_mut() {
                        *seen = mtime;
                    }
                }
                Err(e) => {
                    // The old token may still work; the model API decides.
                    tracing::warn!(error = %e, "cannot refresh the CLI login");
                }
            }
        }
        match state.as_ref() {
            Some((_, oauth)) => Ok(oauth.access_token.clone()),
            None => Err("no login".into()),
        }
    }

    async fn refresh(&self, oauth: &OAuth) -> Result<OAuth, String> {
        let body = json!({
            "grant_type": "refresh_token",
            "refresh_token": oauth.refresh_token,
            "client_id": CLI_OAUTH_CLIENT_ID,
            "scope": oauth.scopes.join(" "),
        });
        let res = self
            .client
            .post(&self.token_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("token refresh answered {}", res.status()));
        }
        let answer: Value = res.json().await.map_err(|e| e.to_string())?;
        let access_token = answer["access_token"]
            .as_str()
            .ok_or("no access_token in the refresh answer")?
            .to_owned();
        let expires_at = answer["expires_in"]
            .as_i64()
            .map(|s| chrono::Utc::now().timestamp_millis() + s * 1000);
        let scopes = match answer["scope"].as_str() {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None => oauth.scopes.clone(),
        };
        Ok(OAuth {
            access_token,
            refresh_token: answer["refresh_token"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| oauth.refresh_token.clone()),
            expires_at,
            scopes,
        })
    }

    /// Stores a refreshed token in the file, keeping its other fields, by
    /// rename so a reader never sees half a file.
    async fn write_back(&self, oauth: &OAuth) -> Result<(), String> {
        let path = self.path.clone();
        let oauth = oauth.clone();
        crate::blocking::run(move || -> Result<(), String> {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let mut file: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let entry = &mut file["claudeAiOauth"];
            entry["accessToken"] = json!(oauth.access_token);
            entry["refreshToken"] = json!(oauth.refresh_token);
            entry["expiresAt"] = json!(oauth.expires_at);
            entry["scopes"] = json!(oauth.scopes);
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| e.to_string())?;
            out.write_all(file.to_string().as_bytes())
                .and_then(|_| out.sync_all())
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

fn read_login(path: &Path) -> Result<OAuth, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let entry = &file["claudeAiOauth"];
    let access_token = entry["accessToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{}: no claudeAiOauth.accessToken", path.display()))?
        .to_owned();
    Ok(OAuth {
        access_token,
        refresh_token: entry["refreshToken"].as_str().map(str::to_owned),
        expires_at: entry["expiresAt"].as_i64(),
        scopes: entry["scopes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings(dir: Option<&Path>) -> ModelSettings {
        ModelSettings {
            base_url: "http://m".into(),
            api_key: None,
            auth_token: None,
            oauth_token: None,
            custom_headers: vec![],
            login_dir: dir.map(Path::to_path_buf),
            oauth_token_url: "http://m/token".into(),
            gateway_addr: "127.0.0.1:0".into(),
            prices_file: None,
        }
    }

    #[test]
    fn the_environment_comes_before_the_login_and_nothing_is_none() {
        let client = reqwest::Client::new();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(&settings(Some(dir.path())), &client).0, Source::None);
        std::fs::write(
            dir.path().join(".credentials.json"),
            r#"{"claudeAiOauth": {"accessToken": "at", "expiresAt": 1}}"#,
        )
        .unwrap();
        assert_eq!(
            detect(&settings(Some(dir.path())), &client).0,
            Source::CliLogin
        );
        let mut s = settings(Some(dir.path()));
        s.oauth_token = Some(Secret("o".into()));
        assert_eq!(detect(&s, &client).0, Source::OauthToken);
        s.api_key = Some(Secret("k".into()));
        let (source, credential) = detect(&s, &client);
        assert_eq!(source, Source::ApiKey);
        assert_eq!(credential.unwrap().kind(), Kind::ApiKey);
    }
}
