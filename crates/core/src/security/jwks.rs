//! The signing keys of trusted issuers: found through each issuer's
//! discovery document (`<issuer>/.well-known/openid-configuration` →
//! `jwks_uri`) and kept in memory per issuer. A token signed with a key
//! not in memory makes the issuer's keys be read again (that is how a key
//! rotation is picked up), but at most once per `REFETCH_AT_MOST_EVERY` per
//! issuer, so tokens with made-up key ids cannot make the server hammer an
//! issuer. Only issuers a trust rule names are ever asked (the caller checks
//! that first), and every answer is bounded in time and size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use serde::de::DeserializeOwned;
use url::Url;

/// Longest issuer URL a rule may name.
pub const MAX_ISSUER_LEN: usize = 512;
/// Largest discovery document read.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;
/// Largest key set read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most signing keys an issuer may publish at once.
pub const MAX_KEYS: usize = 32;
/// An issuer's keys are read again at most this often.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(30);
/// Keys older than this are read again on their next use (a key the issuer
/// withdrew stops working within this time).
const REFRESH_AFTER: Duration = Duration::from_secs(3600);
/// Issuers remembered; past it the memory starts over.
const MAX_ISSUERS: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The issuer's keys are known, and none is the one asked for.
    #[error("the issuer publishes no such key")]
    Unknown,
    /// The issuer's keys could not be read (why: for the log).
    #[error("the issuer's keys cannot be read: {0}")]
    Unavailable(String),
}

/// Checks an issuer's (or its `jwks_uri`'s) URL: `https://`, or `http://`
/// on loopback only (a provider on the server's own host); no credentials,
/// query or fragment.
pub fn check_issuer_url(raw: &str) -> Result<Url, String> {
    if raw.len() > MAX_ISSUER_LEN {
        return Err(format!("is longer than {MAX_ISSUER_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("is not a valid absolute URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => return Err("has no host".into()),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https:// URL (http:// only on loopback)".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url)
}

#[derive(Debug, Default)]
struct IssuerKeys {
    keys: Vec<Jwk>,
    fetched_at: Option<Instant>,
    tried_at: Option<Instant>,
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// What the console's sign-in reads of a provider's discovery document
/// (OpenID Connect Discovery 1.0 §3; RP-Initiated Logout 1.0 §2.1).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// Where some providers put the claims (groups) the ID token lacks.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// Checks an endpoint a discovery document names: as an issuer URL
/// (`check_issuer_url`) except that a query is allowed (some providers
/// put one in their authorization or logout endpoint).
pub fn check_endpoint_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("is not a valid absolute URL: {e}"))?;
    let mut bare = url.clone();
    bare.set_query(None);
    check_issuer_url(bare.as_str())?;
    Ok(url)
}

pub struct KeySets {
    /// No proxy from the environment, no redirects: the keys come from
    /// where the discovery document says, or not at all.
    client: reqwest::Client,
    /// One lock per issuer: requests waiting for the same fetch share it.
    issuers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<IssuerKeys>>>>,
    /// Discovery documents of sign-in providers, and when each was read.
    providers: Mutex<HashMap<String, (Instant, ProviderMetadata)>>,
}

impl std::fmt::Debug for KeySets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySets").finish_non_exhaustive()
    }
}

impl KeySets {
    pub fn new() -> Result<KeySets, reqwest::Error> {
        Ok(KeySets {
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(FETCH_TIMEOUT)
                .user_agent(concat!("claude-code-api/", env!("CARGO_PKG_VERSION")))
                .build()?,
            issuers: Mutex::new(HashMap::new()),
            providers: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTP client keys are read with (no proxy, no redirects, bounded
    /// in time): the sign-in's token requests use it too.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The discovery document of a sign-in provider, read again after
    /// `REFRESH_AFTER`; every endpoint it names is checked.
    pub async fn provider(&self, issuer: &str) -> Result<ProviderMetadata, String> {
        {
            let cached = self.providers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, meta)) = cached.get(issuer) {
                if at.elapsed() < REFRESH_AFTER {
                    return Ok(meta.clone());
                }
            }
        }
        let base = check_issuer_url(issuer).map_err(|e| format!("the issuer {e}"))?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            base.as_str().trim_end_matches('/')
        );
        let meta: ProviderMetadata = self.get_json(&url, MAX_DISCOVERY_BYTES).await?;
        if meta.issuer != issuer {
            return Err("the discovery document names another issuer".into());
        }
        for (name, value) in [
            ("authorization_endpoint", Some(&meta.authorization_endpoint)),
            ("token_endpoint", Some(&meta.token_endpoint)),
            ("jwks_uri", Some(&meta.jwks_uri)),
            ("end_session_endpoint", meta.end_session_endpoint.as_ref()),
        ] {
            if let Some(value) = value {
                check_endpoint_url(value).map_err(|e| format!("its {name} {e}"))?;
            }
        }
        let mut cached = self.providers.lock().unwrap_or_else(|e| e.into_inner());
        if cached.len() >= MAX_ISSUERS {
            cached.clear();
        }
        cached.insert(issuer.to_owned(), (Instant::now(), meta.clone()));
        Ok(meta)
    }

    /// The key `kid` of `issuer` (its only key when the token names none).
    pub async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Jwk, KeyError> {
        let slot = self.slot(issuer);
        let mut held = slot.lock().await;
        let fresh = held
            .fetched_at
            .is_some_and(|at| at.elapsed() < REFRESH_AFTER);
        if fresh {
            if let Some(key) = find(&held.keys, kid) {
                return Ok(key);
            }
        }
        let may_fetch = held
            .tried_at
            .is_none_or(|at| at.elapsed() >= REFETCH_AT_MOST_EVERY);
        if may_fetch {
            held.tried_at = Some(Instant::now());
            match self.fetch(issuer).await {
                Ok(keys) => {
                    held.keys = keys;
                    held.fetched_at = Some(Instant::now());
                }
                Err(why) => {
                    tracing::warn!(issuer, error = %why, "cannot read a trusted issuer's signing keys");
                    if held.fetched_at.is_none() {
                        return Err(KeyError::Unavailable(why));
                    }
                }
            }
        }
        match find(&held.keys, kid) {
            Some(key) => Ok(key),
            None if held.fetched_at.is_none() => Err(KeyError::Unavailable(
                "not read yet; retried shortly".into(),
            )),
            None => Err(KeyError::Unknown),
        }
    }

    fn slot(&self, issuer: &str) -> Arc<tokio::sync::Mutex<IssuerKeys>> {
        let mut issuers = self.issuers.lock().unwrap_or_else(|e| e.into_inner());
        if !issuers.contains_key(issuer) && issuers.len() >= MAX_ISSUERS {
            issuers.clear();
        }
        issuers.entry(issuer.to_owned()).or_default().clone()
    }

    /// The issuer's signing keys, read through its discovery document.
    async fn fetch(&self, issuer: &str) -> Result<Vec<Jwk>, String> {
        let base = check_issuer_url(issuer).map_err(|e| format!("the issuer {e}"))?;
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            base.as_str().trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&discovery_url, MAX_DISCOVERY_BYTES).await?;
        // OpenID Connect Discovery 1.0 §4.3: the document is the issuer's own.
        if discovery.issuer != issuer {
            return Err("the discovery document names another issuer".into());
        }
        let jwks_uri =
            check_issuer_url(&discovery.jwks_uri).map_err(|e| format!("its jwks_uri {e}"))?;
        let set: JwkSet = self.get_json(jwks_uri.as_str(), MAX_JWKS_BYTES).await?;
        if set.keys.len() > MAX_KEYS {
            return Err(format!("it publishes more than {MAX_KEYS} keys"));
        }
        Ok(set.keys.into_iter().filter(is_signing_key).collect())
    }

    /// GETs `url` as JSON, refusing an answer larger than `max` bytes
    /// before reading past it.
    async fn get_json<T: DeserializeOwned>(&self, url: &str, max: usize) -> Result<T, String> {
        let res = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", e.without_url()))?;
        if !res.status().is_success() {
            return Err(format!("{url}: HTTP {}", res.status().as_u16()));
        }
        read_json(res, url, max).await
    }
}

/// Reads `res`'s body as JSON, refusing one larger than `max` bytes before
/// reading past it.
pub async fn read_json<T: DeserializeOwned>(
    mut res: reqwest::Response,
    url: &str,
    max: usize,
) -> Result<T, String> {
    let too_large = || format!("{url}: the answer is larger than {max} bytes");
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not the expected JSON: {e}"))
}

/// Public keys for signatures only: a symmetric (`oct`) key in a key set
/// must never let a token signed with a shared secret through.
fn is_signing_key(key: &Jwk) -> bool {
    let usable = matches!(
        key.algorithm,
        AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_)
    );
    let for_signing = matches!(
        key.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    usable && for_signing
}

fn find(keys: &[Jwk], kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None if keys.len() == 1 => keys.first().cloned(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_https_or_loopback_http() {
        assert!(check_issuer_url("https://token.actions.githubusercontent.com").is_ok());
        assert!(check_issuer_url("https://gitlab.example.com/").is_ok());
        assert!(check_issuer_url("http://127.0.0.1:8080").is_ok());
        assert!(check_issuer_url("http://[::1]:8080/realms/x").is_ok());
        assert!(check_issuer_url("http://localhost:9000").is_ok());
        assert!(check_issuer_url("http://idp.example.com").is_err());
        assert!(check_issuer_url("ftp://idp.example.com").is_err());
        assert!(check_issuer_url("https://user:pw@idp.example.com").is_err());
        assert!(check_issuer_url("https://idp.example.com/?a=b").is_err());
        assert!(check_issuer_url("https://idp.example.com/#x").is_err());
        assert!(check_issuer_url("not a url").is_err());
        assert!(check_issuer_url(&format!("https://a.example/{}", "x".repeat(600))).is_err());
    }

    #[test]
    fn endpoints_may_have_a_query_but_are_checked_like_issuers() {
        assert!(check_endpoint_url("https://idp.example.com/authorize?p=signin").is_ok());
        assert!(check_endpoint_url("http://127.0.0.1:9000/auth").is_ok());
        assert!(check_endpoint_url("http://idp.example.com/auth").is_err());
        assert!(check_endpoint_url("https://u:p@idp.example.com/auth").is_err());
        assert!(check_endpoint_url("https://idp.example.com/auth#f").is_err());
        assert!(check_endpoint_url("javascript:alert(1)").is_err());
    }

    #[test]
    fn symmetric_keys_are_never_used() {
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "a", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]}))
        .unwrap();
        let keys: Vec<Jwk> = set.keys.into_iter().filter(is_signing_key).collect();
        assert_eq!(keys.len(), 1);
        assert!(find(&keys, Some("a")).is_some());
        assert!(find(&keys, Some("s")).is_none());
        // No kid: the only key.
        assert!(find(&keys, None).is_some());
    }
}
