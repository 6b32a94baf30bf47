//! Values a template may carry that clients must not read back: the
//! environment of the agent's processes and the credentials of its MCP
//! servers (`env`, `headers`). They reach the CLI as written; the API shows
//! their names with `[redacted]` values (templates show them whole to
//! admin keys, who manage the files anyway).

use std::collections::BTreeMap;

use serde_json::Value;

pub const REDACTED: &str = "[redacted]";

/// Members of an MCP server entry that hold credentials.
const SERVER_SECRETS: &[&str] = &["env", "headers"];

/// Redacts an environment and the MCP servers' credentials, as a template
/// or a session spec carries them.
pub fn credentials(
    env: &mut Option<BTreeMap<String, String>>,
    servers: &mut Option<BTreeMap<String, Value>>,
) {
    self::env(env);
    mcp_servers(servers);
}

fn env(env: &mut Option<BTreeMap<String, String>>) {
    for value in env.iter_mut().flat_map(|e| e.values_mut()) {
        *value = REDACTED.to_owned();
    }
}

fn mcp_servers(servers: &mut Option<BTreeMap<String, Value>>) {
    for server in servers.iter_mut().flat_map(|s| s.values_mut()) {
        for member in SERVER_SECRETS {
            if let Some(Value::Object(values)) = server.get_mut(*member) {
                // A secret's name is not its value: `{"secret": NAME}` stays.
                for value in values.values_mut().filter(|v| v.get("secret").is_none()) {
                    *value = Value::from(REDACTED);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_stay_values_go() {
        let mut e = Some(BTreeMap::from([("TOKEN".to_owned(), "s3cret".to_owned())]));
        env(&mut e);
        assert_eq!(e.unwrap()["TOKEN"], REDACTED);

        let mut servers = Some(BTreeMap::from([(
            "api".to_owned(),
            json!({"type": "http", "url": "https://x", "headers": {"Authorization": "Bearer s3cret"},
                   "env": {"K": "v"}, "command": "run"}),
        )]));
        mcp_servers(&mut servers);
        let api = &servers.unwrap()["api"];
        assert_eq!(api["headers"]["Authorization"], REDACTED);
        assert_eq!(api["env"]["K"], REDACTED);
        assert_eq!(api["url"], "https://x");
        assert_eq!(api["command"], "run");
        let mut none = None;
        env(&mut none);
        assert!(none.is_none());
    }
}
