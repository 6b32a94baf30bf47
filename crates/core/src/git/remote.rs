//! Which remotes a tenant may register: `https://` anywhere public, `ssh`
//! (URL or `user@host:path`), plain `http://` and loopback or private hosts
//! only when the operator lists them (`GIT_ALLOWED_HOSTS`), local paths only
//! beneath `GIT_ALLOWED_PATHS`. A credential never rides in the URL.

use std::path::{Path, PathBuf};

use url::Url;

use crate::config::git::GitSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    Http,
    Ssh,
    Local,
}

/// A checked remote.
#[derive(Debug, Clone)]
pub struct Remote {
    /// As git is given it.
    pub url: String,
    pub transport: Transport,
    /// `None` for a local path.
    pub host: Option<String>,
    pub port: u16,
    /// `owner/name` (GitHub, Gitea) or `group/sub/name` (GitLab): the
    /// path without a trailing `.git`.
    pub project_path: String,
}

/// Longest URL accepted.
const MAX_URL: usize = 2048;

/// Checks the form of `raw` (no DNS: see `check_host`).
pub fn parse(raw: &str, settings: &GitSettings) -> Result<Remote, String> {
    let raw = raw.trim();
    if raw.is_empty()
        || raw.len() > MAX_URL
        || raw.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "url must be 1 to {MAX_URL} printable characters without spaces"
        ));
    }
    if raw.starts_with('-') {
        return Err("url must not start with '-'".into());
    }
    if raw.starts_with('/') {
        return local(raw, &settings.allowed_paths);
    }
    if let Some(scp) = scp_like(raw) {
        return scp;
    }
    let url = Url::parse(raw).map_err(|e| format!("url is not a git URL: {e}"))?;
    let transport = match url.scheme() {
        "https" => Transport::Https,
        "http" => Transport::Http,
        "ssh" => Transport::Ssh,
        other => {
            return Err(format!(
                "url scheme {other:?} is not served: use https://, ssh:// or user@host:path"
            ))
        }
    };
    if transport != Transport::Ssh && (!url.username().is_empty() || url.password().is_some()) {
        return Err("url must not carry credentials: give them as `credential`".into());
    }
    if url.password().is_some() {
        return Err("url must not carry a password: give an SSH key as `credential`".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("url must not have a query or fragment".into());
    }
    let host = url
        .host_str()
        .ok_or("url has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if transport == Transport::Http && !allowed(&host, &settings.allowed_hosts) {
        return Err(format!(
            "plain http:// is refused for {host}; use https://, or the operator lists the host in GIT_ALLOWED_HOSTS"
        ));
    }
    let project_path = project_path(url.path())?;
    Ok(Remote {
        url: url.to_string(),
        transport,
        port: url.port_or_known_default().unwrap_or(22),
        host: Some(host),
        project_path,
    })
}

/// `user@host:path` (scp syntax): ssh.
fn scp_like(raw: &str) -> Option<Result<Remote, String>> {
    if raw.contains("://") {
        return None;
    }
    let (user_host, path) = raw.split_once(':')?;
    if user_host.contains('/') {
        return None;
    }
    if path.starts_with(':') {
        // `transport::address` (ext::, fd::): never a remote here.
        return Some(Err("url: transport:: addresses are not served".into()));
    }
    let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    {
        return Some(Err(
            "url: the host of user@host:path is not a host name".into()
        ));
    }
    Some(project_path(path).map(|project_path| Remote {
        url: raw.to_owned(),
        transport: Transport::Ssh,
        host: Some(host.to_ascii_lowercase()),
        port: 22,
        project_path,
    }))
}

fn local(raw: &str, allowed_paths: &[PathBuf]) -> Result<Remote, String> {
    let refused = || {
        format!(
            "{raw} is not a repository beneath a folder the operator allows (GIT_ALLOWED_PATHS)"
        )
    };
    let real = std::fs::canonicalize(raw).map_err(|_| refused())?;
    let inside = allowed_paths.iter().any(|dir| {
        std::fs::canonicalize(dir).is_ok_and(|dir| real.starts_with(&dir) && real != dir)
    });
    if !inside || !real.is_dir() {
        return Err(refused());
    }
    Ok(Remote {
        url: real.to_string_lossy().into_owned(),
        transport: Transport::Local,
        host: None,
        port: 0,
        project_path: project_path(&real.to_string_lossy())?,
    })
}

fn project_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    if trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|part| part.is_empty() || part == "..")
    {
        return Err("url has no repository path".into());
    }
    Ok(trimmed.to_owned())
}

fn allowed(host: &str, allowed_hosts: &[String]) -> bool {
    allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// Resolves the remote's host and refuses loopback, private and other
/// special-purpose addresses unless the operator allowed the host.
pub async fn check_host(remote: &Remote, settings: &GitSettings) -> Result<(), String> {
    let Some(host) = &remote.host else {
        return Ok(());
    };
    match crate::webhooks::ssrf::resolve_checked(host, remote.port, &settings.allowed_hosts).await {
        Ok(_) => Ok(()),
        Err(crate::webhooks::ssrf::Unreachable::Unresolvable) => {
            Err(format!("the host {host} does not resolve"))
        }
        Err(crate::webhooks::ssrf::Unreachable::Internal(_)) => Err(format!(
            "{host} is a loopback, private or special-purpose address; the operator may allow it in GIT_ALLOWED_HOSTS"
        )),
    }
}

/// A provider's API address: `https://` (or an allowed host), checked like
/// a remote.
pub async fn check_api_url(raw: &str, settings: &GitSettings) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("api_url is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or("api_url has no host")?
        .to_ascii_lowercase();
    match url.scheme() {
        "https" => {}
        "http" if allowed(&host, &settings.allowed_hosts) => {}
        _ => {
            return Err(
                "api_url must be https:// (plain http:// only for hosts in GIT_ALLOWED_HOSTS)"
                    .into(),
            )
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("api_url must not carry credentials".into());
    }
    let remote = Remote {
        url: raw.to_owned(),
        transport: Transport::Https,
        port: url.port_or_known_default().unwrap_or(443),
        host: Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        ),
        project_path: String::new(),
    };
    check_host(&remote, settings)
        .await
        .map_err(|e| format!("api_url: {e}"))?;
    Ok(url)
}

/// `path` as a local remote is shown: itself.
pub fn is_local(url: &str) -> bool {
    Path::new(url).is_absolute()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &[&str], paths: &[&Path]) -> GitSettings {
        GitSettings {
            secrets_key: None,
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            allowed_paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            timeout: std::time::Duration::from_secs(60),
            max_repos: 10,
            max_diff_bytes: 1 << 20,
            max_push_bytes: 1 << 20,
        }
    }

    #[test]
    fn remotes_are_checked_by_form() {
        let s = settings(&["git.internal"], &[]);
        let r = parse("https://github.com/acme/app.git", &s).unwrap();
        assert_eq!(
            (r.transport, r.project_path.as_str()),
            (Transport::Https, "acme/app")
        );
        let r = parse("git@gitlab.com:group/sub/app.git", &s).unwrap();
        assert_eq!(
            (r.transport, r.project_path.as_str()),
            (Transport::Ssh, "group/sub/app")
        );
        assert!(parse("ssh://git@host:2222/a/b", &s).is_ok());
        assert!(parse("http://git.internal/a/b", &s).is_ok());
        for bad in [
            "http://example.com/a/b",
            "https://user:tok@github.com/a/b",
            "https://tok@github.com/a/b",
            "file:///etc",
            "ext::sh -c id",
            "git://host/a/b",
            "-uhttps://x/a",
            "https://github.com/",
            "/etc",
        ] {
            assert!(parse(bad, &s).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_paths_only_beneath_allowed_folders() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("app.git");
        std::fs::create_dir(&repo).unwrap();
        let s = settings(&[], &[dir.path()]);
        assert_eq!(
            parse(repo.to_str().unwrap(), &s).unwrap().transport,
            Transport::Local
        );
        assert!(
            parse(dir.path().to_str().unwrap(), &s).is_err(),
            "the folder itself"
        );
        let traversal = format!("{}/../", repo.display());
        assert!(parse(&traversal, &s).is_err());
        assert!(parse("/etc", &s).is_err());
    }
}
