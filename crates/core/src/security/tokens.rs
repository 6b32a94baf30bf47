//! Bearer tokens of identity providers and CI issuers (GitHub Actions,
//! GitLab CI `id_tokens`): a JWT of an issuer a trust rule names, verified
//! with `jsonwebtoken` against the issuer's published keys (`jwks`), acts
//! as the first rule (by name) whose audience and claims it matches.
//!
//! Only asymmetric algorithms are accepted, whatever a token's header says:
//! `none` and every HS* are refused before any key is looked at, so a token
//! signed with a shared secret (or with a public key used as one) fails.
//! Keys come from the issuer's key set only, never from the token (`jwk`,
//! `jku` and `x5u` headers are ignored).

use std::collections::BTreeMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::auth::{tenant_rate_limit, Caller, Resolved};
use super::jwks::{KeyError, KeySets};
use crate::config::Settings;
use crate::db::models::tenant::TenantId;
use crate::db::models::trust_rule::{self, TrustRule};
use crate::db::DbPool;
use crate::error::ServiceError;

/// Longest token read; longer ones are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 60;
/// The `key_id` of a token's caller is this and the rule's id.
pub const KEY_ID_PREFIX: &str = "oidc:";
/// Longest `key_label` (the token's subject) kept.
const LABEL_MAX_CHARS: usize = 200;
/// The algorithms a token may be signed with.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused, in the words the client reads (a 401's
/// detail): enough to fix a pipeline, nothing about the server's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the bearer token is longer than 16 KiB")]
    TooLong,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signing algorithm is not accepted (RS*, PS*, ES256, ES384 or EdDSA)")]
    Algorithm,
    #[error("the token's issuer is not trusted")]
    UntrustedIssuer,
    #[error("the token is signed with a key its issuer does not publish")]
    UnknownKey,
    #[error("the token's issuer cannot be reached to check its signature; retry later")]
    IssuerUnavailable,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's audience is not accepted")]
    Audience,
    #[error("the token lacks a required claim (iss, aud, exp) or has one of the wrong type")]
    Claims,
    #[error("no trust rule matches the token's claims")]
    NoRuleMatches,
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> ServiceError {
        ServiceError::TokenRefused(r.to_string())
    }
}

/// Whether a presented credential is a JWT (three dot-separated base64url
/// parts, the last one empty for an unsigned token) rather than an API key
/// (keys never hold a dot).
pub fn looks_like_jwt(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    let base64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !value.starts_with(super::keys::KEY_PREFIX)
        && parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| base64url(p))
}

/// The header and the issuer a token claims, read before anything is
/// verified: only to choose whose keys check it.
pub fn unverified_issuer(token: &str) -> Result<(Header, String), Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::TooLong);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| match named_algorithm(token) {
        // `none` and unknown names are not algorithms the library knows.
        Some(_) => Refusal::Algorithm,
        None => Refusal::Malformed,
    })?;
    if !ACCEPTED.contains(&header.alg) {
        return Err(Refusal::Algorithm);
    }
    #[derive(serde::Deserialize)]
    struct Issuer {
        iss: Option<Value>,
    }
    let claims: Issuer =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| Refusal::Malformed)?;
    match claims.iss {
        Some(Value::String(iss)) if !iss.is_empty() => Ok((header, iss)),
        _ => Err(Refusal::Claims),
    }
}

/// The `alg` a header the library cannot read names (`none`, say): to
/// tell a refused algorithm from a token that is not a JWT at all.
fn named_algorithm(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Named {
        alg: String,
    }
    let encoded = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice::<Named>(&json).ok().map(|h| h.alg)
}

/// Verifies `token` (whose header is `header`) with `key`: signature,
/// `iss` exactly `issuer`, `aud` holding one of `audiences`, `exp`
/// required, `nbf` and `iat` not in the future (each with the leeway).
/// Its claims when it holds.
pub fn verify(
    token: &str,
    header: &Header,
    key: &Jwk,
    issuer: &str,
    audiences: &[&str],
) -> Result<Map<String, Value>, Refusal> {
    if !key_fits(key, header.alg) {
        return Err(Refusal::UnknownKey);
    }
    let decoding = DecodingKey::from_jwk(key).map_err(|_| Refusal::UnknownKey)?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    use jsonwebtoken::errors::ErrorKind;
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::ImmatureSignature => Refusal::NotYetValid,
                ErrorKind::InvalidAudience => Refusal::Audience,
                ErrorKind::InvalidIssuer => Refusal::UntrustedIssuer,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Refusal::Algorithm,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    Refusal::Claims
                }
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) => {
                    Refusal::Malformed
                }
                _ => Refusal::BadSignature,
            }
        })?;
    // `jsonwebtoken` does not look at `iat`; a token from the future is
    // a clock (or a forger) to refuse.
    let now = jsonwebtoken::get_current_timestamp();
    match data.claims.get("iat") {
        None => {}
        Some(Value::Number(n)) => {
            let issued = n.as_f64().ok_or(Refusal::Claims)?;
            if issued > (now + LEEWAY_SECONDS) as f64 {
                return Err(Refusal::NotYetValid);
            }
        }
        Some(_) => return Err(Refusal::Claims),
    }
    Ok(data.claims)
}

/// Whether `key` may check a signature of `alg`: the same family, the
/// curve the algorithm names, and the algorithm the key states if any.
fn key_fits(key: &Jwk, alg: Algorithm) -> bool {
    if let Some(stated) = key.common.key_algorithm {
        if Algorithm::try_from(stated).ok() != Some(alg) {
            return false;
        }
    }
    match (&key.algorithm, alg.family()) {
        (AlgorithmParameters::RSA(_), AlgorithmFamily::Rsa) => true,
        (AlgorithmParameters::EllipticCurve(ec), AlgorithmFamily::Ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        (AlgorithmParameters::OctetKeyPair(okp), AlgorithmFamily::Ed) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// Whether a claim's value is what a rule expects: equal, or starting
/// with what precedes a final `*`. Strings compare as they are, numbers
/// and booleans as their JSON text.
pub fn value_matches(expected: &str, actual: &Value) -> bool {
    let actual = match actual {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => actual.to_string(),
        _ => return false,
    };
    match expected.strip_suffix('*') {
        Some(prefix) => actual.starts_with(prefix),
        None => actual == expected,
    }
}

/// Whether the token's `aud` (a string or a list) holds `audience`.
fn audience_holds(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// Whether a verified token's claims satisfy `rule`.
pub fn rule_matches(rule: &TrustRule, claims: &Map<String, Value>) -> bool {
    let Ok(expected) = serde_json::from_str::<BTreeMap<String, String>>(&rule.claims) else {
        tracing::warn!(rule = %rule.id, "a trust rule's stored claims are unreadable; it matches nothing");
        return false;
    };
    audience_holds(claims, &rule.audience)
        && expected
            .iter()
            .all(|(name, value)| claims.get(name).is_some_and(|v| value_matches(value, v)))
}

/// Who the token names, for the audit log: its `sub`, cut short.
fn subject_label(claims: &Map<String, Value>) -> String {
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => sub.chars().take(LABEL_MAX_CHARS).collect(),
        _ => "token without a subject".into(),
    }
}

/// Verifies bearer tokens against the trust rules and the issuers' keys.
#[derive(Debug)]
pub struct BearerTokens {
    keys: KeySets,
}

/// A verified token's caller, and until when (Unix seconds) it holds.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub resolved: Resolved,
    pub expires_at: u64,
}

impl BearerTokens {
    pub fn new() -> Result<BearerTokens, reqwest::Error> {
        Ok(BearerTokens {
            keys: KeySets::new()?,
        })
    }

    /// The issuers' key sets (the console's sign-in shares them).
    pub fn key_sets(&self) -> &KeySets {
        &self.keys
    }

    /// Who `token` acts as; a refused token is `ServiceError::TokenRefused`
    /// with why.
    pub async fn resolve(
        &self,
        pool: &DbPool,
        settings: &Settings,
        token: &str,
    ) -> Result<TokenIdentity, ServiceError> {
        let (header, issuer) = unverified_issuer(token)?;
        let lookup = issuer.clone();
        let rules = crate::db::run(pool, move |c| trust_rule::for_issuer(c, &lookup)).await?;
        if rules.is_empty() {
            return Err(Refusal::UntrustedIssuer.into());
        }
        let key = self
            .keys
            .key(&issuer, header.kid.as_deref())
            .await
            .map_err(|e| match e {
                KeyError::Unknown => Refusal::UnknownKey,
                KeyError::Unavailable(_) => Refusal::IssuerUnavailable,
            })?;
        let mut audiences: Vec<&str> = rules.iter().map(|(r, _, _)| r.audience.as_str()).collect();
        audiences.sort_unstable();
        audiences.dedup();
        let claims = verify(token, &header, &key, &issuer, &audiences)?;
        let (rule, requests, window) = rules
            .iter()
            .find(|(rule, _, _)| rule_matches(rule, &claims))
            .ok_or(Refusal::NoRuleMatches)?;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map(|exp| exp.max(0.0) as u64)
            .ok_or(Refusal::Claims)?;
        Ok(TokenIdentity {
            resolved: Resolved {
                caller: Caller {
                    tenant: TenantId(rule.tenant_id.clone()),
                    key_id: format!("{KEY_ID_PREFIX}{}", rule.id),
                    key_label: subject_label(&claims),
                    role: rule.role.clone(),
                    person: None,
                },
                rate_limit: tenant_rate_limit(settings, *requests, *window),
            },
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, claims: Value) -> TrustRule {
        TrustRule {
            id: format!("tr_{name}"),
            name: name.into(),
            issuer: "https://issuer.example".into(),
            audience: "cca".into(),
            claims: claims.to_string(),
            tenant_id: "alice".into(),
            role: "member".into(),
            created_at: crate::db::now(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn jwts_are_told_from_keys() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."));
        assert!(!looks_like_jwt("cca_abc.def.ghi"));
        assert!(!looks_like_jwt("alice-key-0123456789"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a b.c.d"));
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused_by_their_header() {
        // {"alg":"none"}.{"iss":"x"}.
        let none = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.";
        assert_eq!(unverified_issuer(none).unwrap_err(), Refusal::Algorithm);
        // {"alg":"HS256"}.{"iss":"x"}.sig
        let hs = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln";
        assert_eq!(unverified_issuer(hs).unwrap_err(), Refusal::Algorithm);
        // {"alg":"RS256"}.{"iss":"x"}.sig
        let rs = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln";
        assert_eq!(unverified_issuer(rs).unwrap().1, "x");
        let long = format!("{rs}{}", "A".repeat(MAX_TOKEN_BYTES));
        assert_eq!(unverified_issuer(&long).unwrap_err(), Refusal::TooLong);
    }

    #[test]
    fn rules_match_every_claim_exactly_or_by_prefix() {
        let token = claims(json!({
            "aud": "cca", "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app", "repository_owner": "acme",
            "ref": "refs/heads/main", "run_attempt": 1,
        }));
        assert!(rule_matches(
            &rule("a", json!({"repository": "acme/app"})),
            &token
        ));
        assert!(rule_matches(
            &rule(
                "b",
                json!({"repository": "acme/*", "ref": "refs/heads/main"})
            ),
            &token
        ));
        assert!(rule_matches(
            &rule("c", json!({"run_attempt": "1"})),
            &token
        ));
        assert!(!rule_matches(
            &rule("d", json!({"repository": "acme/other"})),
            &token
        ));
        assert!(!rule_matches(
            &rule(
                "e",
                json!({"repository": "acme/app", "ref": "refs/heads/dev"})
            ),
            &token
        ));
        assert!(!rule_matches(
            &rule("f", json!({"environment": "prod"})),
            &token
        ));
        // `*` only as a suffix: elsewhere it is a plain character.
        assert!(!rule_matches(
            &rule("g", json!({"repository": "*/app"})),
            &token
        ));
        let other_aud = claims(json!({"aud": ["x", "y"], "repository": "acme/app"}));
        assert!(!rule_matches(
            &rule("h", json!({"repository": "acme/app"})),
            &other_aud
        ));
        let listed_aud = claims(json!({"aud": ["x", "cca"], "repository": "acme/app"}));
        assert!(rule_matches(
            &rule("i", json!({"repository": "acme/app"})),
            &listed_aud
        ));
        assert_eq!(subject_label(&token), "repo:acme/app:ref:refs/heads/main");
    }
}
