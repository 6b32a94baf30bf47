//! MCP servers of a session, as the CLI's `mcpServers` entries. A remote
//! (`type: "http"` or `"sse"`) server is reached through the server: the CLI is told
//! it is an SDK server, so its messages come to the server over the CLI's
//! own pipe, and the server sends them on with the headers, secrets
//! included, that never enter the sandbox. A `stdio` server runs in the
//! sandbox with what the tenant gave it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Most MCP servers of one session.
pub const MAX_SERVERS: usize = 16;

/// Server names: the middle of the CLI's `mcp__NAME__tool`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// How a server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP, through the server's relay.
    Http,
    /// The older HTTP+SSE, through the server's relay.
    Sse,
    /// A command in the agent's sandbox.
    Stdio,
}

/// The entry's transport; `None` for an entry that names none known.
pub fn transport(entry: &Value) -> Option<Transport> {
    match entry.get("type") {
        None => Some(Transport::Stdio),
        Some(kind) => match kind.as_str()? {
            "http" => Some(Transport::Http),
            "sse" => Some(Transport::Sse),
            "stdio" => Some(Transport::Stdio),
            _ => None,
        },
    }
}

/// Whether the entry is a remote server the server relays.
pub fn is_relayed(entry: &Value) -> bool {
    matches!(transport(entry), Some(Transport::Http | Transport::Sse))
}

/// What the CLI is given for the servers: relayed ones as SDK servers of
/// the same name, the others as they are.
pub fn cli_config(servers: &BTreeMap<String, Value>) -> Value {
    let entries: serde_json::Map<String, Value> = servers
        .iter()
        .map(|(name, entry)| {
            let given = if is_relayed(entry) {
                json!({"type": "sdk", "name": name})
            } else {
                entry.clone()
            };
            (name.clone(), given)
        })
        .collect();
    json!({ "mcpServers": entries })
}

/// The names of the relayed servers (announced in `initialize`).
pub fn relayed_names(servers: &BTreeMap<String, Value>) -> Vec<String> {
    servers
        .iter()
        .filter(|(_, entry)| is_relayed(entry))
        .map(|(name, _)| name.clone())
        .collect()
}

/// A header's value: given, or a tenant secret read at each request.
pub enum HeaderValue<'a> {
    Plain(&'a str),
    Secret(&'a str),
}

/// The headers of a relayed server.
pub fn headers(entry: &Value) -> Vec<(&str, HeaderValue<'_>)> {
    entry
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| match value {
            Value::String(s) => Some((name.as_str(), HeaderValue::Plain(s))),
            Value::Object(o) => o
                .get("secret")
                .and_then(Value::as_str)
                .map(|s| (name.as_str(), HeaderValue::Secret(s))),
            _ => None,
        })
        .collect()
}

/// The secrets the servers refer to, by name.
pub fn secret_names(servers: &BTreeMap<String, Value>) -> Vec<String> {
    servers
        .values()
        .flat_map(headers)
        .filter_map(|(_, v)| match v {
            HeaderValue::Secret(s) => Some(s.to_owned()),
            HeaderValue::Plain(_) => None,
        })
        .collect()
}

/// Why a tenant's `mcp_servers` cannot be used, or `Ok`: each is
/// `{type: "http" | "sse", url, headers?}` or `{type?: "stdio", command, args?, env?}`.
pub fn validate(servers: &BTreeMap<String, Value>) -> Result<(), String> {
    if servers.len() > MAX_SERVERS {
        return Err(format!(
            "mcp_servers: at most {MAX_SERVERS} servers, not {}",
            servers.len()
        ));
    }
    for (name, entry) in servers {
        if !valid_name(name) {
            return Err(format!(
                "mcp_servers: invalid server name {name:?}: use A-Z a-z 0-9 _ - (at most 64)"
            ));
        }
        let field = format!("mcp_servers.{name}");
        let Some(object) = entry.as_object() else {
            return Err(format!("{field} must be an object"));
        };
        let Some(kind) = transport(entry) else {
            return Err(format!(
                "{field}.type must be \"http\", \"sse\" or \"stdio\""
            ));
        };
        let allowed: &[&str] = match kind {
            Transport::Http | Transport::Sse => &["type", "url", "headers"],
            Transport::Stdio => &["type", "command", "args", "env"],
        };
        if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("{field}: unknown field {extra:?}"));
        }
        match kind {
            Transport::Http | Transport::Sse => check_http(&field, object)?,
            Transport::Stdio => check_stdio(&field, object)?,
        }
    }
    Ok(())
}

fn check_http(field: &str, object: &serde_json::Map<String, Value>) -> Result<(), String> {
    let url = object
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field}.url is required"))?;
    let parsed = url::Url::parse(url).map_err(|e| format!("{field}.url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || url.len() > 2048
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(format!(
            "{field}.url must be http or https, without a user or password, at most 2048 characters"
        ));
    }
    let Some(headers) = object.get("headers") else {
        return Ok(());
    };
    let Some(headers) = headers.as_object() else {
        return Err(format!("{field}.headers must be an object"));
    };
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("{field}.headers: invalid header name {name:?}"));
        }
        let ok = match value {
            Value::String(s) => reqwest::header::HeaderValue::from_str(s).is_ok(),
            Value::Object(o) => {
                o.len() == 1
                    && o.get("secret")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{field}.headers.{name} must be a header value or {{\"secret\": NAME}}"
            ));
        }
    }
    Ok(())
}

fn check_stdio(field: &str, object: &serde_json::Map<String, Value>) -> Result<(), String> {
    if object
        .get("command")
        .and_then(Value::as_str)
        .is_none_or(|c| c.trim().is_empty())
    {
        return Err(format!("{field}.command is required"));
    }
    if let Some(args) = object.get("args") {
        if !args
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err(format!("{field}.args must be a list of strings"));
        }
    }
    if let Some(env) = object.get("env") {
        if !env
            .as_object()
            .is_some_and(|e| e.values().all(Value::is_string))
        {
            return Err(format!("{field}.env must map names to strings"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn remote_servers_become_sdk_servers_for_the_cli() {
        let s = servers(json!({
            "remote": {"type": "http", "url": "https://mcp.example/mcp",
                       "headers": {"Authorization": {"secret": "TOKEN"}}},
            "local": {"command": "tool", "args": ["-v"]},
        }));
        assert!(validate(&s).is_ok());
        let config = cli_config(&s);
        assert_eq!(
            config["mcpServers"]["remote"],
            json!({"type": "sdk", "name": "remote"})
        );
        assert_eq!(config["mcpServers"]["local"]["command"], "tool");
        assert!(!config.to_string().contains("TOKEN"));
        assert_eq!(relayed_names(&s), vec!["remote"]);
        assert_eq!(secret_names(&s), vec!["TOKEN"]);
    }

    #[test]
    fn bad_entries_name_their_field() {
        for (bad, named) in [
            (json!({"a": {"type": "ws", "url": "ws://x"}}), "\"sse\""),
            (json!({"a": {"type": "http"}}), "mcp_servers.a.url"),
            (
                json!({"a": {"type": "http", "url": "ftp://x"}}),
                "mcp_servers.a.url",
            ),
            (
                json!({"a": {"type": "http", "url": "http://x", "headers": {"X": 3}}}),
                "headers.X",
            ),
            (json!({"a": {"args": []}}), "mcp_servers.a.command"),
            (json!({"a b": {"command": "x"}}), "invalid server name"),
            (json!({"a": {"command": "x", "cwd": "/"}}), "cwd"),
        ] {
            let e = validate(&servers(bad)).unwrap_err();
            assert!(e.contains(named), "{named}: {e}");
        }
    }
}
