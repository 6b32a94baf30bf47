//! The model gateway: the server between every CLI process and the model
//! API. A CLI process gets `ANTHROPIC_BASE_URL` pointing here and a token of
//! its own that is worthless anywhere else; the gateway checks the token,
//! forwards the request with the real credential of the process's tenant
//! (its own, else the server's), streams the answer back and records the
//! usage the model reported. The agent never holds a real credential.

mod allowlist;
pub mod credential;
pub mod forward;
pub mod pricing;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock, Weak};

use rand::RngCore;

use crate::config::ModelSettings;
use crate::db::{self, DbPool};
use credential::{Credential, Kind, Source};

/// Prefix of per-process tokens, so one is recognisable in a log.
const TOKEN_PREFIX: &str = "ccagw_";

/// Who a per-process token speaks for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tenant_id: String,
    pub session_id: Option<String>,
    /// The usage of the process's calls, as they stream.
    pub meter: usage::UsageMeter,
    /// Set while the server primes the process (see `ProcessGrant::set_priming`).
    pub priming: Arc<std::sync::atomic::AtomicBool>,
}

/// Shared by the session actors (which hand out tokens), the admin API
/// (which changes tenant credentials) and the gateway's own listener.
#[derive(Clone)]
pub struct ModelGateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// The model API, without a trailing `/`.
    upstream: String,
    client: reqwest::Client,
    source: Source,
    server_credential: Option<Credential>,
    custom_headers: Vec<(String, String)>,
    /// Tenants with a credential of their own, reloaded from the database.
    tenants: RwLock<HashMap<String, Credential>>,
    /// Live per-process tokens.
    grants: RwLock<HashMap<String, Grant>>,
    /// `http://127.0.0.1:PORT`, once the listener is bound.
    url: OnceLock<String>,
    pool: DbPool,
    prices: pricing::Prices,
}

/// How the server reaches the model, for `/health` (never a secret).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ModelAuthStatus {
    /// `ok`, or `error` when no credential is configured.
    pub status: &'static str,
    /// `cli_login`, `oauth_token`, `api_key`, `auth_token` or `none`.
    pub source: &'static str,
    /// Tenants using a credential of their own.
    pub tenant_credentials: usize,
    /// What to do when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

/// A per-process token; dropped with its process, it stops working.
pub struct ProcessGrant {
    token: String,
    kind: Kind,
    url: String,
    meter: usage::UsageMeter,
    priming: Arc<std::sync::atomic::AtomicBool>,
    gateway: Weak<Inner>,
}

impl std::fmt::Debug for ProcessGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGrant")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ProcessGrant {
    /// What the CLI's environment gets: the gateway's address and the token,
    /// in the variable of the credential kind it stands for.
    pub fn env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("ANTHROPIC_BASE_URL".to_owned(), self.url.clone()),
            (self.kind.cli_variable().to_owned(), self.token.clone()),
        ])
    }

    /// The usage of this process's model calls.
    pub fn meter(&self) -> usage::UsageMeter {
        self.meter.clone()
    }

    /// While set, the gateway answers this process's model calls itself
    /// with an empty reply of no tokens: nothing goes upstream, nothing is
    /// charged. The server sets it only for the priming exchange it sends
    /// a new process before any client's prompt (see `actors::session`).
    pub fn set_priming(&self, on: bool) {
        self.priming.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for ProcessGrant {
    fn drop(&mut self) {
        if let Some(inner) = self.gateway.upgrade() {
            if let Ok(mut grants) = inner.grants.write() {
                grants.remove(&self.token);
            }
        }
    }
}

impl std::fmt::Debug for ModelGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelGateway")
            .field("upstream", &self.inner.upstream)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl ModelGateway {
    pub fn new(settings: &ModelSettings, pool: DbPool) -> anyhow::Result<ModelGateway> {
        let client = reqwest::Client::builder()
            // An environment proxy would see every prompt; the operator sets
            // ANTHROPIC_BASE_URL to go through one.
            .no_proxy()
            .build()?;
        let (source, server_credential) = credential::detect(settings, &client);
        let prices = pricing::Prices::load(settings.prices_file.as_deref())
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(ModelGateway {
            inner: Arc::new(Inner {
                upstream: settings.base_url.trim_end_matches('/').to_owned(),
                client,
                source,
                server_credential,
                custom_headers: settings.custom_headers.clone(),
                tenants: RwLock::new(HashMap::new()),
                grants: RwLock::new(HashMap::new()),
                url: OnceLock::new(),
                pool,
                prices,
            }),
        })
    }

    /// Records where the gateway's listener is bound (`http://ADDR`),
    /// the address handed to every CLI process.
    pub fn set_url(&self, url: String) {
        let _ = self.inner.url.set(url);
    }

    pub fn url(&self) -> Option<&str> {
        self.inner.url.get().map(String::as_str)
    }

    /// A token for one CLI process of `tenant_id`.
    pub fn grant(&self, tenant_id: &str, session_id: Option<&str>) -> ProcessGrant {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!(
            "{TOKEN_PREFIX}{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let kind = self
            .credential_for(tenant_id)
            .map_or(Kind::ApiKey, |c| c.kind());
        let meter = usage::UsageMeter::default();
        let priming = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Ok(mut grants) = self.inner.grants.write() {
            grants.insert(
                token.clone(),
                Grant {
                    tenant_id: tenant_id.to_owned(),
                    session_id: session_id.map(str::to_owned),
                    meter: meter.clone(),
                    priming: priming.clone(),
                },
            );
        }
        ProcessGrant {
            token,
            kind,
            url: self.url().unwrap_or_default().to_owned(),
            meter,
            priming,
            gateway: Arc::downgrade(&self.inner),
        }
    }

    fn lookup(&self, token: &str) -> Option<Grant> {
        self.inner.grants.read().ok()?.get(token).cloned()
    }

    /// What `calls` cost at the price table's prices, in micro-USD.
    pub fn cost_micros(&self, calls: &[usage::CallUsage]) -> i64 {
        calls.iter().map(|c| self.inner.prices.cost_micros(c)).sum()
    }

    /// The tenant's own credential, else the server's.
    pub fn credential_for(&self, tenant_id: &str) -> Option<Credential> {
        let own = self
            .inner
            .tenants
            .read()
            .ok()
            .and_then(|t| t.get(tenant_id).cloned());
        own.or_else(|| self.inner.server_credential.clone())
    }

    /// Reads the tenants' own credentials from the database again.
    pub async fn reload_tenant_credentials(&self) -> db::DbResult<()> {
        let rows = db::run(&self.inner.pool, db::models::model_call::all_credentials).await?;
        let loaded: HashMap<String, Credential> = rows
            .into_iter()
            .filter_map(|row| {
                let kind = Kind::parse(&row.kind)?;
                Some((
                    row.tenant_id,
                    Credential::Static {
                        kind,
                        secret: row.secret,
                    },
                ))
            })
            .collect();
        if let Ok(mut tenants) = self.inner.tenants.write() {
            *tenants = loaded;
        }
        Ok(())
    }

    /// Keeps the tenant credentials in step with the database (changes made
    /// by the admin CLI, or by another server) every `every`.
    pub fn reload_periodically(&self, every: std::time::Duration) {
        let gateway = self.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = gateway.reload_tenant_credentials().await {
                    tracing::warn!(error = %e, "cannot reload tenant model credentials");
                }
            }
        });
    }

    pub fn status(&self) -> ModelAuthStatus {
        let configured = self.inner.server_credential.is_some();
        ModelAuthStatus {
            status: if configured { "ok" } else { "error" },
            source: self.inner.source.as_str(),
            tenant_credentials: self.inner.tenants.read().map_or(0, |t| t.len()),
            detail: (!configured).then_some(
                "no model credential: run `claude-code-api login`, or set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN",
            ),
        }
    }
}
