//! Console sign-in through the OpenID Connect provider of `settings.oidc`:
//! the authorization code flow with PKCE (S256), `state` and `nonce`.
//!
//! `begin` stores a sign-in under way (`oidc_logins`: state, nonce and
//! verifier) keyed by the hash of a random value only the browser that
//! started it holds (a short-lived cookie), and answers where to send the
//! browser. `finish` takes that row once (a callback from another browser,
//! a replayed or an expired one finds none), checks `state`, exchanges the
//! code at the token endpoint, verifies the ID token (signature against the
//! provider's published keys, `iss`, `aud`, `exp` with leeway, `nonce`,
//! asymmetric algorithms only: `security::tokens`), maps the groups claim
//! to a tenant and role (the first entry of `OIDC_GROUP_MAPPING` that
//! matches) and stores a console session for that person. Everything the
//! provider answers is bounded in time and size.

use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::console_sessions::{random_token, SESSION_HOURS};
use super::Services;
use crate::config::oidc::OidcProvider;
use crate::db::models::console_session::{self, ConsolePerson, PendingLogin};
use crate::db::models::member::SigningIn;
use crate::error::ServiceError;
use crate::security::jwks::{self, KeyError, ProviderMetadata};
use crate::security::keys::hash_key;
use crate::security::tokens::{self, Refusal};

/// A sign-in must come back from the provider within this time.
pub const LOGIN_MINUTES: i64 = 10;
/// Most sign-ins under way at once (each waits at most `LOGIN_MINUTES`).
const MAX_PENDING_LOGINS: i64 = 10_000;
/// The `key_id` of a person's requests is this and their subject.
pub const PERSON_PREFIX: &str = "person:";
/// Largest token endpoint answer read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest subject, email and group kept or compared.
const MAX_SUBJECT_LEN: usize = 255;
const MAX_EMAIL_LEN: usize = 320;
const MAX_GROUP_LEN: usize = 1024;
/// Most groups read of one person.
const MAX_GROUPS: usize = 1000;
/// Longest `code` or `state` a callback may carry.
pub const MAX_CALLBACK_PARAM: usize = 4096;

/// A sign-in started: the value of the browser's sign-in cookie and the
/// provider's authorization URL to send it to.
#[derive(Debug)]
pub struct Begun {
    pub cookie_value: String,
    pub redirect: String,
}

/// A person signed in: their console session's cookie value, and who.
#[derive(Debug)]
pub struct SignedInPerson {
    pub cookie_value: String,
    pub tenant: String,
    pub role: String,
    pub subject: String,
}

fn provider(services: &Services) -> Result<&OidcProvider, ServiceError> {
    services
        .settings
        .oidc
        .provider
        .as_ref()
        .ok_or_else(|| ServiceError::NotFound("sign-in with a provider is not configured".into()))
}

async fn metadata(services: &Services, p: &OidcProvider) -> Result<ProviderMetadata, ServiceError> {
    services
        .identities
        .key_sets()
        .provider(&p.issuer)
        .await
        .map_err(|why| {
            tracing::warn!(issuer = %p.issuer, error = %why, "cannot read the sign-in provider's discovery document");
            ServiceError::Upstream(
                "the identity provider cannot be reached or answered wrongly; try again later"
                    .into(),
            )
        })
}

/// The PKCE challenge of `verifier` (RFC 7636 §4.2, S256).
pub fn code_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Starts a sign-in: stores its state, nonce and verifier, and answers the
/// provider's authorization URL.
pub async fn begin(services: &Services) -> Result<Begun, ServiceError> {
    let p = provider(services)?;
    let meta = metadata(services, p).await?;
    let cookie_value = random_token();
    let row = PendingLogin {
        id_hash: hash_key(&cookie_value),
        state: random_token(),
        nonce: random_token(),
        verifier: random_token(),
        expires_at: crate::db::now() + chrono::Duration::minutes(LOGIN_MINUTES),
    };
    let mut url = jwks::check_endpoint_url(&meta.authorization_endpoint).map_err(|e| {
        ServiceError::Upstream(format!("the provider's authorization endpoint {e}"))
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", &p.redirect_uri())
        .append_pair("scope", &p.scopes.join(" "))
        .append_pair("state", &row.state)
        .append_pair("nonce", &row.nonce)
        .append_pair("code_challenge", &code_challenge(&row.verifier))
        .append_pair("code_challenge_method", "S256");
    let now = crate::db::now();
    let stored = crate::db::run(&services.pool, move |c| {
        console_session::insert_login_sweeping(c, &row, now, MAX_PENDING_LOGINS)
    })
    .await?;
    if !stored {
        tracing::warn!("{MAX_PENDING_LOGINS} console sign-ins are under way; refusing more");
        return Err(ServiceError::RateLimited(
            "too many sign-ins are under way; try again in a few minutes".into(),
        ));
    }
    Ok(Begun {
        cookie_value,
        redirect: url.into(),
    })
}

/// What the provider sent the browser back with.
#[derive(Debug, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's `error` (the person declined, …) and its description.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The issuer the answer says it is from (RFC 9207), when it says.
    pub iss: Option<String>,
}

/// Ends a sign-in: `cookie_value` is the browser's sign-in cookie.
pub async fn finish(
    services: &Services,
    cookie_value: Option<&str>,
    callback: Callback,
) -> Result<SignedInPerson, ServiceError> {
    let p = provider(services)?;
    // The row is taken first: whatever happens next, this sign-in is over.
    let pending = match cookie_value.filter(|v| !v.is_empty() && v.len() <= 128) {
        Some(v) => {
            let id_hash = hash_key(v);
            crate::db::run(&services.pool, move |c| {
                console_session::take_login(c, &id_hash)
            })
            .await?
        }
        None => None,
    };
    let Some(pending) = pending else {
        return Err(ServiceError::BadRequest(
            "this sign-in was not started in this browser, was already used, or expired; \
             start again from the sign-in page"
                .into(),
        ));
    };
    if let Some(error) = callback.error {
        let mut why: String = error.chars().take(100).collect();
        if let Some(d) = callback.error_description {
            why.push_str(": ");
            why.extend(d.chars().take(300));
        }
        return Err(ServiceError::Forbidden(format!(
            "the identity provider did not sign you in ({why})"
        )));
    }
    let state = callback.state.unwrap_or_default();
    if !tokens_equal(&state, &pending.state) {
        return Err(ServiceError::BadRequest(
            "the sign-in's state does not match the one this browser started; start again".into(),
        ));
    }
    if callback.iss.as_ref().is_some_and(|iss| *iss != p.issuer) {
        return Err(ServiceError::BadRequest(
            "the answer comes from another identity provider than this server's".into(),
        ));
    }
    let code = callback
        .code
        .filter(|c| !c.is_empty() && c.len() <= MAX_CALLBACK_PARAM)
        .ok_or_else(|| ServiceError::BadRequest("the provider sent no code back".into()))?;
    let meta = metadata(services, p).await?;
    let tokens = exchange(services, p, &meta, &code, &pending.verifier).await?;
    let mut claims = verify_id_token(services, p, &tokens.id_token, &pending.nonce).await?;
    if !claims.contains_key(&p.groups_claim) {
        if let (Some(endpoint), Some(access_token)) =
            (&meta.userinfo_endpoint, &tokens.access_token)
        {
            let groups = userinfo_groups(services, p, endpoint, access_token, &claims).await?;
            if let Some(groups) = groups {
                claims.insert(p.groups_claim.clone(), groups);
            }
        }
    }
    let person = person(&claims, &p.groups_claim)?;
    let verified_email = person.email.as_deref().filter(|_| person.email_verified);
    let mapped = match p.map(&person.groups, verified_email) {
        Some(mapped) => {
            let tenant = mapped.tenant.clone();
            let exists = crate::db::run(&services.pool, move |c| {
                console_session::tenant_exists(c, &tenant)
            })
            .await?;
            if !exists {
                tracing::warn!(tenant = %mapped.tenant, "OIDC_GROUP_MAPPING names a tenant that does not exist");
                return Err(ServiceError::Forbidden(format!(
                    "your group maps to the tenant {:?}, which does not exist on this server; \
                     ask its operator",
                    mapped.tenant
                )));
            }
            Some((mapped.tenant.clone(), mapped.role.clone()))
        }
        None => None,
    };
    let signing_in = SigningIn {
        subject: person.subject.clone(),
        email: person.email.clone(),
        email_verified: person.email_verified,
    };
    let Some(member) = super::members::join_on_sign_in(services, signing_in, mapped).await? else {
        tracing::info!(subject = %person.subject, "a person of no mapped group or invitation was refused");
        return Err(ServiceError::Forbidden(
            "your account is not a member of any tenant on this server".into(),
        ));
    };
    let tenant = member.tenant_id.clone();
    let cookie_value = random_token();
    let now = crate::db::now();
    let row = ConsolePerson {
        id_hash: hash_key(&cookie_value),
        tenant_id: tenant.clone(),
        role: member.role.clone(),
        subject: person.subject.clone(),
        email: person.email,
        id_token: tokens.id_token,
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
    };
    crate::db::run(&services.pool, move |c| {
        console_session::insert_person_sweeping(c, &row, now)
    })
    .await?;
    Ok(SignedInPerson {
        cookie_value,
        tenant,
        role: member.role,
        subject: person.subject,
    })
}

/// Signs a person out: deletes the session the cookie value names and,
/// when it was a person's and the provider has an `end_session_endpoint`,
/// answers where to send the browser to sign out there too.
pub async fn sign_out(
    services: &Services,
    cookie_value: &str,
) -> Result<Option<String>, ServiceError> {
    let id_hash = hash_key(cookie_value);
    let removed = crate::db::run(&services.pool, move |c| {
        console_session::delete_person(c, &id_hash)
    })
    .await?;
    let (Some(row), Some(p)) = (removed, services.settings.oidc.provider.as_ref()) else {
        return Ok(None);
    };
    // The session is gone whatever the provider says: a provider that
    // cannot be reached only means no logout there.
    let Ok(meta) = metadata(services, p).await else {
        return Ok(None);
    };
    let Some(end) = meta.end_session_endpoint else {
        return Ok(None);
    };
    let Ok(mut url) = jwks::check_endpoint_url(&end) else {
        return Ok(None);
    };
    url.query_pairs_mut()
        .append_pair("id_token_hint", &row.id_token)
        .append_pair("post_logout_redirect_uri", &p.post_logout_redirect_uri())
        .append_pair("client_id", &p.client_id);
    Ok(Some(url.into()))
}

fn tokens_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The code for an ID token at the token endpoint (RFC 6749 §4.1.3), the
/// client authenticated with `client_secret_basic`, or `client_secret_post`
/// when the provider lists only that.
/// What the token endpoint gave for a sign-in's code.
struct Tokens {
    id_token: String,
    /// For the userinfo endpoint, when the ID token lacks the groups.
    access_token: Option<String>,
}

/// The groups claim of the person from the provider's userinfo endpoint
/// (OpenID Connect Core §5.3), for providers that leave it out of the ID
/// token. The answer must be about the same `sub` (§5.3.2), else the
/// sign-in is refused; `None` when it holds no such claim either.
async fn userinfo_groups(
    services: &Services,
    p: &OidcProvider,
    endpoint: &str,
    access_token: &str,
    id_claims: &Map<String, Value>,
) -> Result<Option<Value>, ServiceError> {
    let upstream = |why: String| {
        tracing::warn!(issuer = %p.issuer, error = %why, "the sign-in's userinfo request failed");
        ServiceError::Upstream(
            "the identity provider did not tell who you are (its userinfo endpoint); start again"
                .into(),
        )
    };
    let url = jwks::check_endpoint_url(endpoint)
        .map_err(|e| upstream(format!("its userinfo endpoint {e}")))?;
    let res = services
        .identities
        .key_sets()
        .client()
        .get(url.clone())
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| upstream(e.without_url().to_string()))?;
    if !res.status().is_success() {
        return Err(upstream(format!("HTTP {}", res.status().as_u16())));
    }
    let info: Map<String, Value> = jwks::read_json(res, url.as_str(), MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(upstream)?;
    if info.get("sub") != id_claims.get("sub") {
        return Err(upstream("its answer is about another person (sub)".into()));
    }
    Ok(info.get(&p.groups_claim).cloned())
}

async fn exchange(
    services: &Services,
    p: &OidcProvider,
    meta: &ProviderMetadata,
    code: &str,
    verifier: &str,
) -> Result<Tokens, ServiceError> {
    let upstream = |why: String| {
        tracing::warn!(issuer = %p.issuer, error = %why, "the sign-in's code exchange failed");
        ServiceError::Upstream(
            "the identity provider did not exchange the sign-in's code; start again".into(),
        )
    };
    let url = jwks::check_endpoint_url(&meta.token_endpoint)
        .map_err(|e| upstream(format!("its token endpoint {e}")))?;
    let redirect_uri = p.redirect_uri();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", verifier),
    ];
    let post_only = meta
        .token_endpoint_auth_methods_supported
        .as_ref()
        .is_some_and(|m| {
            !m.iter().any(|x| x == "client_secret_basic")
                && m.iter().any(|x| x == "client_secret_post")
        });
    let client = services.identities.key_sets().client();
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::ACCEPT, "application/json");
    if post_only {
        form.push(("client_id", &p.client_id));
        form.push(("client_secret", &p.client_secret.0));
    } else {
        // RFC 6749 §2.3.1: each part form-encoded before the Basic scheme.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(enc(&p.client_id), Some(enc(&p.client_secret.0)));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let res = request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| upstream(e.without_url().to_string()))?;
    let status = res.status();
    let body: Map<String, Value> = jwks::read_json(res, url.as_str(), MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(upstream)?;
    if !status.is_success() {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error given");
        return Err(upstream(format!(
            "HTTP {}: {}",
            status.as_u16(),
            error.chars().take(200).collect::<String>()
        )));
    }
    let access_token = match body.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        _ => None,
    };
    match body.get("id_token") {
        Some(Value::String(t)) if !t.is_empty() => Ok(Tokens {
            id_token: t.clone(),
            access_token,
        }),
        _ => Err(upstream("the answer holds no id_token".into())),
    }
}

/// Verifies an ID token of the provider (OpenID Connect Core §3.1.3.7):
/// signature with a published key, `iss`, `aud` holding the client id
/// (and `azp` the client id when it names several), `exp`, and `nonce`.
async fn verify_id_token(
    services: &Services,
    p: &OidcProvider,
    token: &str,
    nonce: &str,
) -> Result<Map<String, Value>, ServiceError> {
    let refused = |r: Refusal| {
        tracing::warn!(issuer = %p.issuer, why = %r, "the provider's ID token was refused");
        ServiceError::TokenRefused(format!("the identity provider's ID token was refused: {r}"))
    };
    let (header, issuer) = tokens::unverified_issuer(token).map_err(refused)?;
    if issuer != p.issuer {
        return Err(refused(Refusal::UntrustedIssuer));
    }
    let key = services
        .identities
        .key_sets()
        .key(&p.issuer, header.kid.as_deref())
        .await
        .map_err(|e| match e {
            KeyError::Unknown => refused(Refusal::UnknownKey),
            KeyError::Unavailable(_) => refused(Refusal::IssuerUnavailable),
        })?;
    let claims = tokens::verify(token, &header, &key, &p.issuer, &[p.client_id.as_str()])
        .map_err(refused)?;
    check_id_token_claims(&claims, &p.client_id, nonce).map_err(|why| {
        tracing::warn!(issuer = %p.issuer, why, "the provider's ID token was refused");
        ServiceError::TokenRefused(format!(
            "the identity provider's ID token was refused: {why}"
        ))
    })?;
    Ok(claims)
}

/// The checks of an ID token `tokens::verify` does not make: its `nonce`
/// is the one this sign-in sent, and `azp` names this client when `aud`
/// lists several.
pub fn check_id_token_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    nonce: &str,
) -> Result<(), &'static str> {
    match claims.get("nonce") {
        Some(Value::String(n)) if tokens_equal(n, nonce) => {}
        _ => return Err("its nonce is not the one this sign-in sent"),
    }
    if let Some(Value::Array(aud)) = claims.get("aud") {
        if aud.len() > 1 {
            match claims.get("azp") {
                Some(Value::String(azp)) if azp == client_id => {}
                _ => return Err("it names several audiences but not this client as its azp"),
            }
        }
    }
    Ok(())
}

/// Who an ID token names.
#[derive(Debug, PartialEq, Eq)]
pub struct Person {
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches for `email` (`email_verified`); only a
    /// verified email takes an invitation.
    pub email_verified: bool,
    pub groups: Vec<String>,
}

/// The person of verified claims: `sub` (required, at most 255
/// characters), `email` if any, and the groups claim (a list of strings or
/// one string; other values, over-long names and groups past the first
/// thousand are ignored).
pub fn person(claims: &Map<String, Value>, groups_claim: &str) -> Result<Person, ServiceError> {
    let subject = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_SUBJECT_LEN => {
            s.clone()
        }
        _ => {
            return Err(ServiceError::TokenRefused(
                "the identity provider's ID token has no usable subject (sub)".into(),
            ))
        }
    };
    let email = match claims.get("email") {
        Some(Value::String(e)) if !e.is_empty() && e.len() <= MAX_EMAIL_LEN => Some(e.clone()),
        _ => None,
    };
    // Some providers send the flag as a string.
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(verified)) => verified == "true",
        _ => false,
    };
    let usable = |g: &Value| match g {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_GROUP_LEN => Some(s.clone()),
        _ => None,
    };
    let groups = match claims.get(groups_claim) {
        Some(Value::Array(items)) => items.iter().take(MAX_GROUPS).filter_map(usable).collect(),
        Some(one @ Value::String(_)) => usable(one).into_iter().collect(),
        _ => Vec::new(),
    };
    Ok(Person {
        subject,
        email,
        email_verified,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_challenge_is_the_s256_of_the_verifier() {
        // BASE64URL(SHA256(verifier)) without padding, as computed elsewhere.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mJ0oPp7ctwG3xQZXzaPa_6AZxZ8ez0"),
            "EKVf9jCdvPNBDoKQFBRVjAwEqiaCMcJdDW10SS6UIYY"
        );
    }

    #[test]
    fn a_wrong_or_missing_nonce_is_refused() {
        let ok = claims(json!({"nonce": "n1", "aud": "c"}));
        assert!(check_id_token_claims(&ok, "c", "n1").is_ok());
        assert!(check_id_token_claims(&ok, "c", "n2").is_err());
        assert!(check_id_token_claims(&claims(json!({"aud": "c"})), "c", "n1").is_err());
        assert!(check_id_token_claims(&claims(json!({"nonce": 1})), "c", "1").is_err());
        // Several audiences: azp must be this client.
        let many = claims(json!({"nonce": "n", "aud": ["c", "other"]}));
        assert!(check_id_token_claims(&many, "c", "n").is_err());
        let many = claims(json!({"nonce": "n", "aud": ["c", "other"], "azp": "c"}));
        assert!(check_id_token_claims(&many, "c", "n").is_ok());
        let many = claims(json!({"nonce": "n", "aud": ["c", "other"], "azp": "other"}));
        assert!(check_id_token_claims(&many, "c", "n").is_err());
    }

    #[test]
    fn the_person_is_read_within_bounds() {
        let p = person(
            &claims(json!({"sub": "u1", "email": "a@b.c", "groups": ["x", 3, "", "y"]})),
            "groups",
        )
        .unwrap();
        assert_eq!(p.subject, "u1");
        assert_eq!(p.email.as_deref(), Some("a@b.c"));
        assert_eq!(p.groups, ["x", "y"]);
        let p = person(&claims(json!({"sub": "u1", "roles": "ops"})), "roles").unwrap();
        assert_eq!(p.groups, ["ops"]);
        assert!(p.email.is_none());
        assert!(person(&claims(json!({"email": "a@b.c"})), "groups").is_err());
        assert!(person(&claims(json!({"sub": "x".repeat(300)})), "groups").is_err());
        let many: Vec<String> = (0..5000).map(|i| format!("g{i}")).collect();
        let p = person(&claims(json!({"sub": "u", "groups": many})), "groups").unwrap();
        assert_eq!(p.groups.len(), MAX_GROUPS);
    }
}
