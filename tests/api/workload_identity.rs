//! Workload identity: bearer tokens (JWTs) of an issuer a trust rule names
//! act as the rule's tenant and role, on every authenticated route. The
//! issuer is a small OpenID provider on loopback started here (a discovery
//! document and a JWKS of EC keys made by the test), and its tokens are
//! shaped like GitHub Actions' OIDC tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

const AUDIENCE: &str = "https://cca.test";

/// A signing key of the test issuer: its private half and its public JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    fn generate(kid: &str) -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        SigningKey {
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }
}

/// An OpenID provider on loopback: `/.well-known/openid-configuration` and
/// `/jwks` (the keys it publishes can change: a rotation).
struct TestIssuer {
    url: String,
    published: Arc<Mutex<Vec<Jwk>>>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl TestIssuer {
    async fn start(keys: &[&SigningKey]) -> TestIssuer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let published: Arc<Mutex<Vec<Jwk>>> =
            Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let (issuer, keys, fetches) = (url.clone(), published.clone(), jwks_fetches.clone());
        let server = HttpServer::new(move || {
            let (issuer, keys, fetches) = (issuer.clone(), keys.clone(), fetches.clone());
            App::new()
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(move || {
                        let issuer = issuer.clone();
                        async move {
                            HttpResponse::Ok().json(json!({
                                "issuer": issuer,
                                "jwks_uri": format!("{issuer}/jwks"),
                                "id_token_signing_alg_values_supported": ["ES256"],
                            }))
                        }
                    }),
                )
                .route(
                    "/jwks",
                    web::get().to(move || {
                        let (keys, fetches) = (keys.clone(), fetches.clone());
                        async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            let keys = keys.lock().unwrap().clone();
                            HttpResponse::Ok().json(json!({ "keys": keys }))
                        }
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        TestIssuer {
            url,
            published,
            jwks_fetches,
        }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.published.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a GitHub Actions OIDC token of `repository` on main.
fn github_claims(issuer: &str, repository: &str) -> Value {
    let owner = repository.split('/').next().unwrap();
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "repository": repository,
        "repository_owner": owner,
        "ref": "refs/heads/main",
        "workflow": "ci",
        "event_name": "push",
        "run_id": "42",
        "iat": now(),
        "nbf": now(),
        "exp": now() + 300,
    })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A request with `Authorization: Bearer <token>`.
fn bearer(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("Authorization", format!("Bearer {token}"))
}

async fn create_rule(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/api/v1/admin/trust-rules", ADMIN, body)
        .send()
        .await
        .unwrap()
}

/// A rule: tokens of `issuer` for `acme/app` act as members of bob.
fn acme_app_rule(issuer: &str) -> Value {
    json!({
        "name": "acme-app-ci",
        "issuer": issuer,
        "audience": AUDIENCE,
        "claims": {"repository": "acme/app", "ref": "refs/heads/*"},
        "tenant": "bob",
        "role": "member",
    })
}

/// Asserts a 401 problem whose detail is `detail`.
async fn assert_refused(res: reqwest::Response, detail: &str) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = assert_problem(res, 401, "unauthorized").await;
    assert_eq!(body["detail"], detail, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
}

#[actix_web::test]
async fn a_ci_token_acts_as_its_rules_tenant_until_the_rule_is_deleted() {
    let app = TestApp::spawn().await;
    let key = SigningKey::generate("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    let res = create_rule(&app, acme_app_rule(&issuer.url)).await;
    assert_eq!(res.status(), 201);
    let rule = res.json::<Value>().await.unwrap()["data"].clone();
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    assert_eq!(rule["key_id"], format!("oidc:{rule_id}"));
    assert_eq!(rule["claims"]["repository"], "acme/app");
    let token = sign(&key, &github_claims(&issuer.url, "acme/app"));

    // A session and a turn of the real CLI, in the rule's tenant.
    let res = bearer(&app, reqwest::Method::POST, "/api/v1/sessions", &token)
        .json(&json!({"name": "from-ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = bearer(
        &app,
        reqwest::Method::POST,
        "/api/v1/sessions/from-ci/chat",
        &token,
    )
    .json(&json!({"message": "hello from the pipeline"}))
    .send()
    .await
    .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["content"].is_string(), "{body}");
    // The session is bob's: bob's key sees it, alice's does not.
    assert_eq!(
        app.get("/api/v1/sessions/from-ci", BOB)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.get("/api/v1/sessions/from-ci", ALICE)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Another tenant's session is a 404 for the token's caller.
    app.create_session(ALICE, "alices").await;
    let res = bearer(
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions/alices",
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_problem(res, 404, "not-found").await;
    // A member's token cannot call admin routes.
    let res = bearer(
        &app,
        reqwest::Method::GET,
        "/api/v1/admin/trust-rules",
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_problem(res, 403, "forbidden").await;

    // The audit log names the rule and the token's subject.
    let audit = get_json(&app, "/api/v1/audit?limit=50", ADMIN).await["data"].clone();
    let entries = audit.as_array().unwrap();
    let by_token: Vec<&Value> = entries
        .iter()
        .filter(|e| e["key_id"] == format!("oidc:{rule_id}"))
        .collect();
    assert!(
        by_token.iter().any(|e| e["action"] == "session.create"),
        "{audit}"
    );
    assert!(by_token.iter().any(|e| e["action"] == "chat"), "{audit}");
    assert!(by_token
        .iter()
        .all(|e| e["key_label"] == "repo:acme/app:ref:refs/heads/main" && e["tenant"] == "bob"));
    assert!(entries
        .iter()
        .any(|e| e["action"] == "trust_rule.create" && e["target"] == rule_id.as_str()));

    // Listed; then deleted, and the same token is refused at once.
    let listed = get_json(&app, "/api/v1/admin/trust-rules?tenant=bob", ADMIN).await;
    assert_eq!(listed["data"][0]["id"], rule_id.as_str());
    let res = app
        .delete(&format!("/api/v1/admin/trust-rules/{rule_id}"), ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = bearer(&app, reqwest::Method::GET, "/api/v1/sessions", &token)
        .send()
        .await
        .unwrap();
    assert_refused(res, "the token's issuer is not trusted").await;
    let res = app
        .delete(&format!("/api/v1/admin/trust-rules/{rule_id}"), ADMIN)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    assert_eq!(
        app.query_i64(&format!(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'trust_rule.delete' AND target = '{rule_id}'"
        )),
        1
    );
}

#[actix_web::test]
async fn tokens_that_fail_a_check_are_401s_that_say_which() {
    // Many refusals from one address: counted, but not to a lockout here.
    let app = TestApp::spawn_with(Options::fake().var("AUTH_FAILURE_LIMIT", "1000000")).await;
    let key = SigningKey::generate("k1");
    let issuer = TestIssuer::start(&[&key]).await;
    assert_eq!(
        create_rule(&app, acme_app_rule(&issuer.url)).await.status(),
        201
    );
    let get = |token: String| bearer(&app, reqwest::Method::GET, "/api/v1/sessions", &token).send();
    let claims = github_claims(&issuer.url, "acme/app");
    let res = get(sign(&key, &claims)).await.unwrap();
    assert_eq!(res.status(), 200);

    // Another repository; another branch pattern is fine (`refs/heads/*`).
    let other = github_claims(&issuer.url, "acme/other");
    assert_refused(
        get(sign(&key, &other)).await.unwrap(),
        "no trust rule matches the token's claims",
    )
    .await;
    let mut branch = claims.clone();
    branch["ref"] = json!("refs/heads/feature");
    assert_eq!(get(sign(&key, &branch)).await.unwrap().status(), 200);
    let mut tag = claims.clone();
    tag["ref"] = json!("refs/tags/v1");
    assert_refused(
        get(sign(&key, &tag)).await.unwrap(),
        "no trust rule matches the token's claims",
    )
    .await;

    // Expired (past the leeway), not valid yet, wrong audience, no exp.
    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 120);
    assert_refused(
        get(sign(&key, &expired)).await.unwrap(),
        "the token has expired",
    )
    .await;
    let mut early = claims.clone();
    early["nbf"] = json!(now() + 600);
    assert_refused(
        get(sign(&key, &early)).await.unwrap(),
        "the token is not valid yet",
    )
    .await;
    let mut audience = claims.clone();
    audience["aud"] = json!("https://elsewhere.test");
    assert_refused(
        get(sign(&key, &audience)).await.unwrap(),
        "the token's audience is not accepted",
    )
    .await;
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(
        get(sign(&key, &no_exp)).await.unwrap(),
        "the token lacks a required claim (iss, aud, exp) or has one of the wrong type",
    )
    .await;

    // An issuer with valid keys that no rule names.
    let rogue_key = SigningKey::generate("k1");
    let rogue = TestIssuer::start(&[&rogue_key]).await;
    let rogue_claims = github_claims(&rogue.url, "acme/app");
    assert_refused(
        get(sign(&rogue_key, &rogue_claims)).await.unwrap(),
        "the token's issuer is not trusted",
    )
    .await;
    assert_eq!(rogue.jwks_fetches.load(Ordering::SeqCst), 0);
    // The trusted issuer's name on a token signed by another key (same kid).
    assert_refused(
        get(sign(&rogue_key, &claims)).await.unwrap(),
        "the token's signature is not valid",
    )
    .await;

    // `alg: none`, and HS256 with a secret or with the public key as one.
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        b64(&claims)
    );
    let algorithm =
        "the token's signing algorithm is not accepted (RS*, PS*, ES256, ES384 or EdDSA)";
    assert_refused(get(unsigned).await.unwrap(), algorithm).await;
    let public_jwk = serde_json::to_string(&key.jwk).unwrap();
    for secret in [b"a shared secret".as_slice(), public_jwk.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret).unwrap())
            .unwrap();
        assert_refused(get(hs).await.unwrap(), algorithm).await;
    }
    // Garbage that looks like a JWT, and a token over 16 KiB.
    assert_refused(
        get("eyJub3QiOiJqc29uIn0.eyJ4IjoxfQ.c2ln".into())
            .await
            .unwrap(),
        "the bearer token is not a well-formed JWT",
    )
    .await;
    let mut huge = claims.clone();
    huge["padding"] = json!("x".repeat(17 * 1024));
    assert_refused(
        get(sign(&key, &huge)).await.unwrap(),
        "the bearer token is longer than 16 KiB",
    )
    .await;

    // Unknown kids make the issuer's keys be read again at most once per 30 s.
    let fetches_before = issuer.jwks_fetches.load(Ordering::SeqCst);
    let stranger = SigningKey::generate("k-unknown");
    for _ in 0..5 {
        assert_refused(
            get(sign(&stranger, &claims)).await.unwrap(),
            "the token is signed with a key its issuer does not publish",
        )
        .await;
    }
    assert!(issuer.jwks_fetches.load(Ordering::SeqCst) <= fetches_before + 1);
    // A rotation: the issuer publishes k2 (and drops k1); once the 30 s
    // have passed, the first k2 token reads the keys again.
    let rotated = SigningKey::generate("k2");
    issuer.publish(&[&rotated]);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let res = get(sign(&rotated, &claims)).await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[actix_web::test]
async fn trust_rules_are_checked_limited_and_admin_only() {
    let app = TestApp::spawn_with(Options::fake().var("AUTH_FAILURE_LIMIT", "3")).await;
    let issuer = "https://token.actions.githubusercontent.com";
    let rule = |name: &str, claims: Value| json!({"name": name, "issuer": issuer, "audience": AUDIENCE, "claims": claims, "tenant": "alice"});
    // A member key may not manage rules.
    let res = app
        .post(
            "/api/v1/admin/trust-rules",
            ALICE,
            rule("r", json!({"repository": "acme/app"})),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .get("/api/v1/admin/trust-rules", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;

    let res = create_rule(&app, rule("r1", json!({"repository_owner": "acme"}))).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["role"], "member");
    let res = create_rule(&app, rule("r1", json!({"repository": "acme/app"}))).await;
    assert_problem(res, 409, "conflict").await;
    let mut unknown_tenant = rule("r2", json!({"repository": "acme/app"}));
    unknown_tenant["tenant"] = json!("nobody");
    assert_problem(create_rule(&app, unknown_tenant).await, 404, "not-found").await;
    for bad in [
        rule("r3", json!({})),
        rule("r3", json!({"repository": "*"})),
        rule("r3", json!({"aud": "x"})),
        rule("r3", json!({"repository": ""})),
        rule("r3", json!({"repository": 5})),
        rule(".r3", json!({"repository": "acme/app"})),
        json!({"name": "r3", "issuer": "http://idp.example.com", "audience": AUDIENCE,
               "claims": {"repository": "acme/app"}, "tenant": "alice"}),
        json!({"name": "r3", "issuer": issuer, "audience": "",
               "claims": {"repository": "acme/app"}, "tenant": "alice"}),
        json!({"name": "r3", "issuer": issuer, "audience": AUDIENCE,
               "claims": {"repository": "acme/app"}, "tenant": "alice", "role": "root"}),
        json!({"name": "r3", "issuer": issuer, "audience": AUDIENCE,
               "claims": {"repository": "acme/app"}, "tenant": "alice", "extra": 1}),
    ] {
        let res = create_rule(&app, bad.clone()).await;
        assert_eq!(res.status(), 422, "{bad}");
    }
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("c{i}"), json!("v"))).collect();
    assert_eq!(
        create_rule(&app, rule("r4", Value::Object(many)))
            .await
            .status(),
        422
    );
    // At most 50 per tenant.
    for i in 2..=50 {
        let res = create_rule(
            &app,
            rule(&format!("r-{i:02}"), json!({"repository": "acme/app"})),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let res = create_rule(&app, rule("r-51", json!({"repository": "acme/app"}))).await;
    assert_problem(res, 409, "conflict").await;
    let listed = get_json(&app, "/api/v1/admin/trust-rules?tenant=alice", ADMIN).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 50);
    assert_eq!(listed["data"][0]["name"], "r-02");
    let res = app
        .delete("/api/v1/admin/trust-rules/tr_nope", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;

    // Refused tokens count as failed authentications of the address, as
    // unknown keys do: past the limit, a 429 before any verification.
    let untrusted = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256", "kid": "k"})),
        b64(&json!({"iss": "https://untrusted.example", "aud": AUDIENCE, "exp": now() + 60}))
    );
    for _ in 0..3 {
        let res = bearer(&app, reqwest::Method::GET, "/api/v1/sessions", &untrusted)
            .send()
            .await
            .unwrap();
        assert_refused(res, "the token's issuer is not trusted").await;
    }
    let res = bearer(&app, reqwest::Method::GET, "/api/v1/sessions", &untrusted)
        .send()
        .await
        .unwrap();
    assert_problem(res, 429, "rate-limited").await;
}
