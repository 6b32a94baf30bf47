//! Operator commands on the same database as the server:
//! `keys create --tenant NAME [--role admin|member] [--label TEXT]`,
//! `keys list [--tenant NAME]`, `keys revoke ID`,
//! `tenants create NAME [limits]`, `tenants list`, `tenants update NAME [limits]`
//! with limits `--budget-usd X|none --max-sessions N|none
//! --max-running-turns N|none --rate-limit-requests N|none
//! --rate-limit-window-seconds N|none --allowed-permission-modes LIST|none
//! --disk-max-mb N|none`,
//! `tenants model-credential NAME --kind api_key|auth_token|oauth_token`
//! (the secret read from stdin, so it is in no process list or shell
//! history), `tenants model-credential NAME --clear`.

use anyhow::{anyhow, bail, Context};

use claude_code_api_core::config::Settings;
use claude_code_api_core::db::models::model_call;
use claude_code_api_core::db::models::tenant::{self, Tenant, TenantLimits};
use claude_code_api_core::db::{self, DbConnection};
use claude_code_api_core::domain::role::Role;
use claude_code_api_core::gateway::credential::Kind;
use claude_code_api_core::security::keys;

pub const USAGE: &str = "\
  claude-code-api keys create --tenant NAME [--role admin|member] [--label TEXT]
  claude-code-api keys list [--tenant NAME]
  claude-code-api keys revoke KEY_ID
  claude-code-api tenants create NAME [--budget-usd X] [--max-sessions N] [--max-running-turns N]
                                      [--rate-limit-requests N] [--rate-limit-window-seconds N]
                                      [--allowed-permission-modes default,acceptEdits]
                                      [--disk-max-mb N]
  claude-code-api tenants list
  claude-code-api tenants update NAME [same options; `none` returns one to the server default]
  claude-code-api tenants model-credential NAME --kind api_key|auth_token|oauth_token  < secret
  claude-code-api tenants model-credential NAME --clear yes";

/// Options after the positional words: `--name value` pairs.
struct Options(Vec<(String, String)>);

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<(Vec<String>, Options)> {
        let mut positional = Vec::new();
        let mut options = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let value = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
                options.push((name.to_owned(), value.clone()));
            } else {
                positional.push(arg.clone());
            }
        }
        Ok((positional, Options(options)))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn only(&self, allowed: &[&str]) -> anyhow::Result<()> {
        match self.0.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((n, _)) => bail!("unknown option --{n}"),
            None => Ok(()),
        }
    }

    fn limits(&self) -> anyhow::Result<TenantLimits> {
        let count = |name: &str| -> anyhow::Result<Option<Option<i64>>> {
            match self.get(name) {
                None => Ok(None),
                Some("none") => Ok(Some(None)),
                Some(v) => {
                    let n: i64 = v.parse().with_context(|| format!("--{name} {v}"))?;
                    if n < 1 {
                        bail!("--{name} must be at least 1");
                    }
                    Ok(Some(Some(n)))
                }
            }
        };
        let budget_micros = match self.get("budget-usd") {
            None => None,
            Some("none") => Some(None),
            Some(v) => {
                let usd: f64 = v.parse().with_context(|| format!("--budget-usd {v}"))?;
                if !(usd.is_finite() && usd >= 0.0) {
                    bail!("--budget-usd must be a non-negative amount");
                }
                Some(Some((usd * 1_000_000.0).round() as i64))
            }
        };
        Ok(TenantLimits {
            budget_micros,
            max_sessions: count("max-sessions")?,
            max_running_turns: count("max-running-turns")?,
            rate_limit_requests: count("rate-limit-requests")?,
            rate_limit_window_seconds: count("rate-limit-window-seconds")?,
            allowed_permission_modes: match self.get("allowed-permission-modes") {
                None => None,
                Some("none") => Some(None),
                Some(v) => {
                    let modes = claude_code_api_core::domain::session::parse_modes(v)
                        .map_err(|e| anyhow!("--allowed-permission-modes: {e}"))?;
                    Some(Some(
                        modes
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ))
                }
            },
            disk_max_mb: count("disk-max-mb")?,
        })
    }
}

const LIMIT_OPTIONS: &[&str] = &[
    "budget-usd",
    "max-sessions",
    "max-running-turns",
    "rate-limit-requests",
    "rate-limit-window-seconds",
    "allowed-permission-modes",
    "disk-max-mb",
];

/// Runs `keys …` or `tenants …`.
pub fn run(group: &str, args: &[String], settings: &Settings) -> anyhow::Result<()> {
    let pool = db::connect(&settings.storage.effective_database_url())
        .context("cannot open the database")?;
    let mut conn = pool.get().context("cannot open the database")?;
    let (positional, options) = Options::parse(args)?;
    let words: Vec<&str> = positional.iter().map(String::as_str).collect();
    match (group, words.as_slice()) {
        ("keys", ["create"]) => {
            options.only(&["tenant", "role", "label"])?;
            let tenant_name = options
                .get("tenant")
                .ok_or_else(|| anyhow!("--tenant is required"))?;
            let role = options.get("role").unwrap_or(Role::Member.as_str());
            if Role::parse(role).is_none() {
                bail!("--role must be {}", Role::names());
            }
            ensure_tenant(&mut conn, tenant_name)?;
            let (row, key) = keys::create_key(
                &mut conn,
                tenant_name,
                role,
                options.get("label").unwrap_or(""),
            )?;
            println!("Created key {} ({role}) for tenant {tenant_name}. It is shown only now:\n\n    {key}\n", row.id);
        }
        ("keys", ["list"]) => {
            options.only(&["tenant"])?;
            for k in tenant::list_keys(&mut conn, options.get("tenant"))? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}…\t{state}\t{}",
                    k.id, k.tenant_id, k.role, k.prefix, k.label
                );
            }
        }
        ("keys", ["revoke", id]) => {
            options.only(&[])?;
            match tenant::revoke_key(&mut conn, id)? {
                Some(k) => {
                    // Running servers on PostgreSQL drop their cached keys now
                    // (on SQLite within AUTH_CACHE_SECONDS).
                    db::notify::notify_identity_change(&mut conn)?;
                    println!("Revoked {} (tenant {}).", k.id, k.tenant_id)
                }
                None => bail!("no key {id}"),
            }
        }
        ("tenants", ["create", name]) => {
            options.only(LIMIT_OPTIONS)?;
            if tenant::find_tenant(&mut conn, name)?.is_some() {
                bail!("a tenant named {name} exists");
            }
            ensure_tenant(&mut conn, name)?;
            let t = tenant::update_limits(&mut conn, name, &options.limits()?)?
                .ok_or_else(|| anyhow!("tenant {name} vanished"))?;
            print_tenant(&t);
        }
        ("tenants", ["list"]) => {
            options.only(&[])?;
            for t in tenant::list_tenants(&mut conn)? {
                print_tenant(&t);
            }
        }
        ("tenants", ["update", name]) => {
            options.only(LIMIT_OPTIONS)?;
            match tenant::update_limits(&mut conn, name, &options.limits()?)? {
                Some(t) => {
                    db::notify::notify_identity_change(&mut conn)?;
                    print_tenant(&t)
                }
                None => bail!("no tenant {name}"),
            }
        }
        ("tenants", ["model-credential", name]) => {
            options.only(&["kind", "clear"])?;
            if tenant::find_tenant(&mut conn, name)?.is_none() {
                bail!("no tenant {name}");
            }
            if options.get("clear").is_some() {
                if !model_call::clear_credential(&mut conn, name)? {
                    bail!("tenant {name} has no credential of its own");
                }
                println!("Tenant {name} uses the server's model credential again.");
                return Ok(());
            }
            let kind = options
                .get("kind")
                .and_then(Kind::parse)
                .ok_or_else(|| anyhow!("--kind must be api_key, auth_token or oauth_token"))?;
            let mut secret = String::new();
            std::io::stdin()
                .read_line(&mut secret)
                .context("cannot read the secret from stdin")?;
            let secret = secret.trim();
            if secret.is_empty() || secret.contains(char::is_whitespace) {
                bail!("give the secret on stdin, one line without spaces");
            }
            model_call::set_credential(&mut conn, name, kind.as_str(), secret)?;
            println!(
                "Tenant {name} now uses its own {} (running servers take it within 10 s).",
                kind.as_str()
            );
        }
        _ => bail!("usage:\n{USAGE}"),
    }
    Ok(())
}

fn ensure_tenant(conn: &mut DbConnection, name: &str) -> anyhow::Result<()> {
    if !keys::is_tenant_name(name) {
        bail!("tenant names are 1-64 of A-Z a-z 0-9 . _ - not starting with '.'");
    }
    tenant::ensure_tenant(conn, &Tenant::new(name, None))?;
    Ok(())
}

fn print_tenant(t: &Tenant) {
    let opt = |v: Option<i64>| v.map_or("default".to_owned(), |n| n.to_string());
    let budget = t
        .budget_micros
        .map_or("none".to_owned(), |b| format!("${:.2}", b as f64 / 1e6));
    println!(
        "{}\tbudget {budget}\tspent ${:.4}\tmax_sessions {}\tmax_running_turns {}\trate {}/{}s\tmodes {}",
        t.name,
        t.spent_micros as f64 / 1e6,
        opt(t.max_sessions),
        opt(t.max_running_turns),
        opt(t.rate_limit_requests),
        opt(t.rate_limit_window_seconds),
        t.allowed_permission_modes.as_deref().unwrap_or("server"),
    );
}
