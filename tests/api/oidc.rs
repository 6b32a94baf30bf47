//! Console sign-in through a real OpenID provider: the certified
//! `oidc-provider` package (tests/oidc/provider.mjs, installed with `npm ci`
//! when missing) on a free loopback port, with one client (this server's
//! callback) and two people: `member` (groups `staff`, `team-alice`, mapped
//! to alice as a member) and `stranger` (mapped to nothing). Its own login
//! page takes any password.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use crate::console::{bare_client, csrf_field, free_port, set_cookie, Browser};
use crate::helpers::*;

const CLIENT_ID: &str = "claude-code-api-test";
const PROVIDER_NAME: &str = "Test IdP";

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the provider's pinned packages once (`npm ci`), unless they are.
fn ensure_installed() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _held = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = provider_dir();
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("run npm ci in tests/oidc (install nodejs and npm)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// The provider process, killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    fn start(public_url: &str, secret: &str) -> Provider {
        ensure_installed();
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .env(
                "REDIRECT_URI",
                format!("{public_url}/console/oidc/callback"),
            )
            .env(
                "POST_LOGOUT_REDIRECT_URI",
                format!("{public_url}/console/login"),
            )
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start node tests/oidc/provider.mjs");
        let stdout = child.stdout.take().expect("the provider's stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening ") {
                    let _ = tx.send(port.trim().to_owned());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the OpenID provider did not start within 120 s");
        Provider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server whose console signs in through a fresh provider; its
/// `PUBLIC_URL` is its own loopback address (a port picked beforehand).
async fn spawn() -> (TestApp, Provider) {
    spawn_from(Options::fake()).await
}

/// The mapping the tests sign in with, unless a test sets its own.
const MAPPING: &str = "admins=alice:admin,team-alice=alice:member,ghosts=no-such-tenant:member";

/// `spawn` with the CLI (and variables) of `base`.
async fn spawn_from(base: Options) -> (TestApp, Provider) {
    let base = match base
        .vars
        .iter()
        .any(|(name, _)| *name == "OIDC_GROUP_MAPPING")
    {
        true => base,
        false => base.var("OIDC_GROUP_MAPPING", MAPPING),
    };
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let secret = claude_code_api_core::services::console_sessions::random_token();
    let provider = Provider::start(&public, &secret);
    let app = TestApp::spawn_with(
        base.var("API_PORT", port.to_string())
            .var("PUBLIC_URL", public)
            .var("OIDC_ISSUER_URL", provider.issuer.clone())
            .var("OIDC_CLIENT_ID", CLIENT_ID)
            .var("OIDC_CLIENT_SECRET", secret)
            .var("OIDC_PROVIDER_NAME", PROVIDER_NAME),
    )
    .await;
    (app, provider)
}

/// Cookies of one HTTP "browser" (the server and the provider are both on
/// 127.0.0.1; their cookies' names differ).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap_or_default();
            let pair = v.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let gone = value.is_empty() || v.to_ascii_lowercase().contains("max-age=0");
            if gone {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let header: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = if header.is_empty() {
            req
        } else {
            req.header("cookie", header.join("; "))
        };
        let res = req.send().await.unwrap();
        self.absorb(&res);
        res
    }
}

fn location(res: &reqwest::Response, base: &str) -> String {
    let raw = res.headers()["location"].to_str().unwrap();
    url::Url::parse(base)
        .unwrap()
        .join(raw)
        .unwrap()
        .to_string()
}

/// Starts a sign-in in `jar`'s browser and signs in at the provider's login
/// page as `login`: the callback URL the provider sends the browser to
/// (not followed).
async fn to_callback(app: &TestApp, http: &reqwest::Client, jar: &mut Jar, login: &str) -> String {
    let res = jar.send(http.get(app.url("/console/oidc/login"))).await;
    assert_eq!(res.status(), 303);
    let mut next = location(&res, &app.base);
    let callback = app.url("/console/oidc/callback");
    for _ in 0..10 {
        if next.starts_with(&callback) {
            return next;
        }
        let res = jar.send(http.get(&next)).await;
        match res.status().as_u16() {
            302 | 303 => next = location(&res, &next),
            200 => {
                let html = res.text().await.unwrap();
                let at = html.find(r#"action=""#).expect("the provider's login form");
                let rest = &html[at + r#"action=""#.len()..];
                let action = url::Url::parse(&next)
                    .unwrap()
                    .join(&rest[..rest.find('"').unwrap()])
                    .unwrap()
                    .to_string();
                let body = crate::console::form_body(&[
                    ("prompt", "login"),
                    ("login", login),
                    ("password", "any"),
                ]);
                let res = jar
                    .send(
                        http.post(&action)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(body),
                    )
                    .await;
                assert!(res.status().is_redirection(), "{}", res.status());
                next = location(&res, &action);
            }
            other => panic!(
                "the provider answered {other}: {}",
                res.text().await.unwrap()
            ),
        }
    }
    panic!("the provider never sent the browser back");
}

#[actix_web::test]
async fn the_callback_is_bound_to_the_browser_that_started_it_and_to_its_state() {
    let (app, _provider) = spawn().await;
    let http = bare_client();

    // The sign-in page offers the provider; key sign-in stays.
    let html = http
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in with Test IdP"), "{html}");
    assert!(html.contains(r#"id="login-form""#), "{html}");

    // The redirect carries PKCE, state and nonce; the sign-in's cookie is
    // HttpOnly and Lax (it must come back with the provider's redirect).
    let res = http
        .get(app.url("/console/oidc/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let to = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["redirect_uri"], app.url("/console/oidc/callback"));
    for field in ["state", "nonce", "code_challenge"] {
        assert!(q[field].len() >= 43, "{field}: {q:?}");
    }
    let (_, header) = set_cookie(&res, "cca_oidc").expect("sign-in cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/console/oidc"] {
        assert!(header.contains(attribute), "{attribute} missing: {header}");
    }

    // A callback opened in another browser (no sign-in cookie: login CSRF)
    // is refused, and signs nobody in.
    let mut first = Jar::default();
    let callback = to_callback(&app, &http, &mut first, "member").await;
    let res = http.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(set_cookie(&res, "cca_console").is_none());
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("not started in this browser"));

    // The right browser with a state that is not its own: refused, and the
    // sign-in is over (the right state later finds nothing).
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, "forged".into())
            } else {
                (k, v)
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let res = first.send(http.get(forged.as_str())).await;
    assert_eq!(res.status(), 400);
    assert!(set_cookie(&res, "cca_console").is_none());
    assert!(res.text().await.unwrap().contains("state does not match"));
    let res = first.send(http.get(&callback)).await;
    assert_eq!(res.status(), 400);
    assert!(set_cookie(&res, "cca_console").is_none());

    // A sign-in from start to end in one browser works.
    let mut browser = Jar::default();
    let callback = to_callback(&app, &http, &mut browser, "member").await;
    let res = browser.send(http.get(&callback)).await;
    assert_eq!(res.status(), 200);
    let (cookie, header) = set_cookie(&res, "cca_console").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(attribute), "{attribute} missing: {header}");
    }
    let (_, removal) = set_cookie(&res, "cca_oidc").expect("the sign-in cookie is removed");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    let html = res.text().await.unwrap();
    assert!(html.contains("member of alice"), "{html}");
    // The person acts as a member of alice: reads alice's sessions, not
    // the admin API.
    let res = http
        .get(app.url("/api/v1/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .get(app.url("/api/v1/admin/tenants"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
}

#[actix_web::test]
async fn a_person_of_no_mapped_group_is_refused_with_a_page() {
    let (app, _provider) = spawn().await;
    let http = bare_client();
    let mut jar = Jar::default();
    let callback = to_callback(&app, &http, &mut jar, "stranger").await;
    let res = jar.send(http.get(&callback)).await;
    assert_eq!(res.status(), 403);
    assert!(set_cookie(&res, "cca_console").is_none());
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(
        html.contains("your account is not a member of any tenant on this server"),
        "{html}"
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM console_people"), 0);
}

#[actix_web::test]
async fn a_member_signs_in_at_the_provider_works_and_signs_out_in_the_browser() {
    let (app, provider) = spawn().await;
    app.create_session(ALICE, "alices-session").await;
    let http = bare_client();
    let browser = Browser::start().await;

    browser.open(&app.url("/console/login")).await;
    browser.click("#oidc-sign-in").await;
    // The provider's own login page.
    browser.fill("input[name=login]", "member").await;
    browser.fill("input[name=password]", "any password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#sign-out").await;
    assert_eq!(browser.path().await, "/console/sessions");
    let who = browser.text("header .who").await;
    assert!(
        who.contains("alice") && who.contains("member@example.com"),
        "{who}"
    );
    assert!(who.contains("member"), "{who}");
    // Its tenant's sessions.
    browser.wait_for(r#"[data-session="alices-session"]"#).await;

    // A member cannot open the admin page.
    browser.open(&app.url("/console/admin")).await;
    browser
        .until(
            "the admin page is refused",
            "document.body.innerText.includes('403')",
        )
        .await;

    // What the person does names them in the audit log.
    let cookie = browser
        .client
        .get_named_cookie("cca_console")
        .await
        .expect("the session cookie")
        .value()
        .to_owned();
    let cookie = format!("cca_console={cookie}");
    let page = http
        .get(app.url("/console/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_field(&page.text().await.unwrap());
    let res = http
        .post(app.url("/api/v1/sessions"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "made-by-a-person"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let who = app.query_strings(
        "SELECT key_id || ' ' || key_label AS s FROM audit_log \
         WHERE key_id LIKE 'person:%'",
    );
    assert!(
        who.iter().any(|w| w == "person:member member@example.com"),
        "{who:?}"
    );

    // Signing out ends the session here and at the provider (its logout
    // page asks first), then comes back to the sign-in page.
    browser.open(&app.url("/console/sessions")).await;
    browser.click("#sign-out").await;
    browser
        .until(
            "the provider's logout page",
            &format!("location.href.startsWith({:?})", provider.issuer),
        )
        .await;
    browser.click("button[name=logout][value=yes]").await;
    browser.wait_for("#login-form").await;
    assert_eq!(browser.path().await, "/console/login");
    // The old cookie is nobody now.
    let res = http
        .get(app.url("/api/v1/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = http
        .get(app.url("/console/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM console_people"), 0);
    browser.close().await;
}

/// Signs `login` in through the provider in a fresh HTTP "browser": the
/// console cookie and the page's CSRF token, or the refusal's status.
async fn sign_in(
    app: &TestApp,
    http: &reqwest::Client,
    login: &str,
) -> Result<(String, String), u16> {
    let mut jar = Jar::default();
    let callback = to_callback(app, http, &mut jar, login).await;
    let res = jar.send(http.get(&callback)).await;
    if res.status() != 200 {
        return Err(res.status().as_u16());
    }
    let (cookie, _) = set_cookie(&res, "cca_console").expect("session cookie");
    let page = http
        .get(app.url("/console/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_field(&page.text().await.unwrap());
    Ok((cookie, csrf))
}

/// A new key of `role` for `tenant`, made by the owner.
async fn key_of(app: &TestApp, tenant: &str, role: &str) -> String {
    let res = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": tenant, "role": role, "label": format!("{tenant} {role}")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    body["data"]["key"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn an_admin_invites_re_roles_and_removes_a_person_with_effect_on_its_live_sign_in() {
    let (app, _provider) = spawn().await;
    let http = bare_client();
    let alice_admin = key_of(&app, "alice", "admin").await;
    let bob_admin = key_of(&app, "bob", "admin").await;

    // The stranger's groups map to nothing: refused until invited.
    assert_eq!(sign_in(&app, &http, "stranger").await.unwrap_err(), 403);
    // An admin invites into its own tenant only, and no higher than itself.
    let res = app
        .post(
            "/api/v1/admin/invitations",
            &alice_admin,
            json!({"email": "Stranger@Example.com", "role": "owner"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .post(
            "/api/v1/admin/invitations",
            &alice_admin,
            json!({"email": "stranger@example.com", "tenant": "bob"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .post(
            "/api/v1/admin/invitations",
            &alice_admin,
            json!({"email": "not an address"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    let res = app
        .post(
            "/api/v1/admin/invitations",
            &alice_admin,
            json!({"email": "Stranger@Example.com", "role": "viewer"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let invitation: serde_json::Value = res.json().await.unwrap();
    assert_eq!(invitation["data"]["email"], "stranger@example.com");
    assert_eq!(invitation["data"]["tenant"], "alice");
    let res = app
        .post(
            "/api/v1/admin/invitations",
            &alice_admin,
            json!({"email": "stranger@example.com"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;
    let listed = get_json(&app, "/api/v1/admin/invitations", &bob_admin).await;
    assert_eq!(listed["data"], json!([]), "bob sees none of alice's");

    // The stranger's verified email takes the invitation: a viewer of alice.
    let (cookie, csrf) = sign_in(&app, &http, "stranger").await.unwrap();
    let listed = get_json(&app, "/api/v1/admin/invitations", &alice_admin).await;
    assert_eq!(listed["data"], json!([]), "the invitation was taken");
    let members = get_json(&app, "/api/v1/admin/members", &alice_admin).await;
    let stranger = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == "stranger")
        .expect("the stranger is a member")
        .clone();
    assert_eq!(stranger["role"], "viewer");
    assert_eq!(stranger["source"], "invitation");
    assert_eq!(stranger["email"], "stranger@example.com");
    let id = stranger["id"].as_str().unwrap().to_owned();
    let listed = get_json(&app, "/api/v1/admin/members", &bob_admin).await;
    assert_eq!(listed["data"], json!([]), "bob sees none of alice's");

    // A viewer reads and changes nothing.
    let as_person =
        |req: reqwest::RequestBuilder| req.header("cookie", &cookie).header("x-csrf-token", &csrf);
    let res = as_person(http.get(app.url("/api/v1/sessions")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = as_person(http.post(app.url("/api/v1/sessions")))
        .json(&json!({"name": "by-a-viewer"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 403, "forbidden").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("viewer"),
        "{problem}"
    );

    // Another tenant's admin cannot touch the member.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/members/{id}")))
        .header("X-API-Key", &bob_admin)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;

    // Made a member: the same sign-in may create a session at once.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/members/{id}")))
        .header("X-API-Key", &alice_admin)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let changed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(changed["data"]["role"], "member");
    assert_eq!(changed["data"]["source"], "admin");
    let res = as_person(http.post(app.url("/api/v1/sessions")))
        .json(&json!({"name": "by-a-member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let made: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        made["data"]["created_by"],
        json!({"id": "person:stranger", "label": "stranger@example.com"})
    );

    // Removed: the sign-in is over at once, and the stranger is refused
    // at its next sign-in (the invitation was used).
    let res = app
        .delete(&format!("/api/v1/admin/members/{id}"), &alice_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = as_person(http.get(app.url("/api/v1/sessions")))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM console_people WHERE subject = 'stranger'"),
        0
    );
    assert_eq!(sign_in(&app, &http, "stranger").await.unwrap_err(), 403);

    // The group-mapped person is a member by its groups; a membership its
    // groups gave before and no longer give goes at its sign-in, with its
    // own keys there. An admin may end its sign-ins, and the audit log
    // names each change.
    app.exec(
        "INSERT INTO tenant_members (id, tenant_id, subject, email, role, source, created_at) \
         VALUES ('mem_stale', 'bob', 'member', NULL, 'admin', 'groups', CURRENT_TIMESTAMP)",
    );
    app.exec(
        "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, label, role, created_at, \
         owner_subject, expires_at) VALUES ('key_stale', 'bob', 'stale-hash', 'cca_x', 'old', \
         'admin', CURRENT_TIMESTAMP, 'member', NULL)",
    );
    let (cookie, _) = sign_in(&app, &http, "member").await.unwrap();
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM tenant_members WHERE tenant_id = 'bob'"),
        0
    );
    assert_eq!(
        app.query_i64(
            "SELECT COUNT(*) AS n FROM api_keys WHERE id = 'key_stale' AND revoked_at IS NULL"
        ),
        0
    );
    let members = get_json(&app, "/api/v1/admin/members", &alice_admin).await;
    let member = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == "member")
        .expect("the mapped person is a member")
        .clone();
    assert_eq!(member["source"], "groups");
    assert_eq!(member["role"], "member");
    let res = app
        .post(
            &format!(
                "/api/v1/admin/members/{}/sign-out",
                member["id"].as_str().unwrap()
            ),
            &alice_admin,
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ended: serde_json::Value = res.json().await.unwrap();
    assert_eq!(ended["data"]["ended"], 1);
    let res = http
        .get(app.url("/api/v1/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let mut actions =
        app.query_strings("SELECT action AS s FROM audit_log WHERE action LIKE 'member.%'");
    actions.sort();
    assert_eq!(
        actions,
        [
            "member.invite",
            "member.remove",
            "member.role",
            "member.sign_out"
        ]
    );
}

#[actix_web::test]
async fn a_member_makes_keys_of_its_own_that_follow_its_membership() {
    let (app, _provider) = spawn().await;
    let http = bare_client();
    let alice_admin = key_of(&app, "alice", "admin").await;
    let (cookie, csrf) = sign_in(&app, &http, "member").await.unwrap();
    let as_person =
        |req: reqwest::RequestBuilder| req.header("cookie", &cookie).header("x-csrf-token", &csrf);
    let me: serde_json::Value = as_person(http.get(app.url("/api/v1/me")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["person"], "member");
    assert_eq!(me["data"]["role"], "member");

    // Keys of its own: no higher than itself, bounded, shown once.
    for (body, status, kind) in [
        (
            json!({"label": "laptop", "role": "admin"}),
            403,
            "forbidden",
        ),
        (
            json!({"label": "laptop", "expires_in_days": 400}),
            422,
            "validation-error",
        ),
        (json!({"label": "  "}), 422, "validation-error"),
    ] {
        let res = as_person(http.post(app.url("/api/v1/me/keys")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(res, status, kind).await;
    }
    let make = |label: &str, role: &str| {
        as_person(http.post(app.url("/api/v1/me/keys")))
            .json(&json!({"label": label, "role": role, "expires_in_days": 30}))
    };
    let res = make("laptop", "member").send().await.unwrap();
    assert_eq!(res.status(), 201);
    let laptop: serde_json::Value = res.json().await.unwrap();
    let laptop_key = laptop["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(laptop["data"]["owner_subject"], "member");
    assert!(laptop["data"]["expires_at"].is_string());
    let res = make("dashboard", "viewer").send().await.unwrap();
    assert_eq!(res.status(), 201);
    let dashboard: serde_json::Value = res.json().await.unwrap();
    let dashboard_key = dashboard["data"]["key"].as_str().unwrap().to_owned();
    // A key is no person: it cannot make personal keys.
    let res = app
        .post("/api/v1/me/keys", &laptop_key, json!({"label": "more"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // The key works as the member, and the audit log names the person.
    app.create_session(&laptop_key, "from-the-laptop").await;
    let labels =
        app.query_strings("SELECT key_label AS s FROM audit_log WHERE action = 'session.create'");
    assert_eq!(labels, ["laptop (person:member)"]);
    // So does the session it made.
    let session = get_json(&app, "/api/v1/sessions/from-the-laptop", &alice_admin).await;
    assert_eq!(
        session["data"]["created_by"]["label"],
        "laptop (person:member)"
    );
    let listed: serde_json::Value = as_person(http.get(app.url("/api/v1/me/keys")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&laptop_key));

    // Lowered to viewer: the member key goes, the viewer key stays.
    let members = get_json(&app, "/api/v1/admin/members", &alice_admin).await;
    let id = members["data"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/members/{id}")))
        .header("X-API-Key", &alice_admin)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .get("/api/v1/sessions", &laptop_key)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .get("/api/v1/sessions", &dashboard_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // An expired key stops by itself.
    app.exec(&format!(
        "UPDATE api_keys SET expires_at = created_at WHERE id = '{}'",
        dashboard["data"]["id"].as_str().unwrap()
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = app
        .get("/api/v1/sessions", &dashboard_key)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;

    // Removed from the tenant: every key of its own is revoked.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/members/{id}")))
        .header("X-API-Key", &alice_admin)
        .json(&json!({"role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = make("after", "member").send().await.unwrap();
    assert_eq!(res.status(), 201, "a member again, at once");
    let after: serde_json::Value = res.json().await.unwrap();
    let res = app
        .delete(&format!("/api/v1/admin/members/{id}"), &alice_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .get("/api/v1/sessions", after["data"]["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    assert_eq!(
        app.query_i64(
            "SELECT COUNT(*) AS n FROM api_keys WHERE owner_subject = 'member' AND revoked_at IS NULL"
        ),
        0
    );
}

/// `GET /api/v1/me` as the browser holding `cookie`.
async fn me_of(app: &TestApp, http: &reqwest::Client, cookie: &str) -> serde_json::Value {
    http.get(app.url("/api/v1/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The status of `key`'s GET of `path`.
async fn status_of(app: &TestApp, path: &str, key: &str) -> u16 {
    app.get(path, key).send().await.unwrap().status().as_u16()
}

/// The session names on the first page `key` lists.
async fn listed_names(app: &TestApp, key: &str) -> Vec<String> {
    let body = get_json(app, "/api/v1/sessions?limit=100", key).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_private_session_is_seen_by_its_person_and_the_admins_only() {
    // The real CLI against the mock model: the private session really runs.
    let (app, _provider) = spawn_from(Options::default()).await;
    let http = bare_client();
    let alice_admin = key_of(&app, "alice", "admin").await;
    let colleague = key_of(&app, "alice", "member").await;
    let (cookie, csrf) = sign_in(&app, &http, "member").await.unwrap();
    let as_person =
        |req: reqwest::RequestBuilder| req.header("cookie", &cookie).header("x-csrf-token", &csrf);
    let res = as_person(http.post(app.url("/api/v1/me/keys")))
        .json(&json!({"label": "laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let laptop: serde_json::Value = res.json().await.unwrap();
    let laptop = laptop["data"]["key"].as_str().unwrap().to_owned();

    // Made through the person's key: private to the person, not the key.
    let diary = app
        .create_session_with(&laptop, json!({"name": "diary", "visibility": "private"}))
        .await;
    assert_eq!(diary["visibility"], "private");
    let shared = app.create_session(&laptop, "notes").await;
    assert_eq!(shared["visibility"], "tenant");
    assert_eq!(
        app.query_strings("SELECT private_to AS s FROM sessions WHERE name = 'diary'"),
        ["person:member"]
    );
    app.chat_ok(&laptop, "diary", "remember the word heron")
        .await;
    let (status, job) = app
        .create_job(
            &laptop,
            "diary",
            json!({"message": "hello", "webhook_url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["data"]["id"].as_str().unwrap().to_owned();
    let done = app.wait_job(&laptop, "diary", &job_id, 60).await;
    assert_eq!(done["status"], "done", "{done}");

    // The person's own sign-in sees it, and forks it; the fork is private too.
    let page: serde_json::Value = as_person(http.get(app.url("/api/v1/sessions/diary")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"]["name"], "diary", "{page}");
    let res = as_person(http.post(app.url("/api/v1/sessions/diary/fork")))
        .json(&json!({"new_name": "diary-copy", "at_turn": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert_eq!(
        app.query_strings("SELECT private_to AS s FROM sessions WHERE name = 'diary-copy'"),
        ["person:member"]
    );

    // A colleague of the same tenant: missing everywhere, like another
    // tenant's; the shared one is there.
    assert_eq!(listed_names(&app, &colleague).await, ["notes"]);
    for path in [
        "/api/v1/sessions/diary".to_owned(),
        "/api/v1/sessions/diary/history".to_owned(),
        "/api/v1/sessions/diary/forks".to_owned(),
        "/api/v1/sessions/diary-copy".to_owned(),
        format!("/api/v1/sessions/diary/jobs/{job_id}"),
    ] {
        assert_eq!(status_of(&app, &path, &colleague).await, 404, "{path}");
    }
    assert_eq!(
        status_of(&app, "/api/v1/sessions/notes", &colleague).await,
        200
    );
    let (status, _) = app.chat(&colleague, "diary", "what was the word?").await;
    assert_eq!(status, 404);
    let deliveries = get_json(&app, "/api/v1/webhooks/deliveries", &colleague).await;
    assert!(!deliveries.to_string().contains(&job_id), "{deliveries}");
    let own = get_json(&app, "/api/v1/webhooks/deliveries", &laptop).await;
    assert!(own.to_string().contains(&job_id), "{own}");
    // Its folder is not the colleague's to point a session at, and the
    // refusal does not name it.
    app.create_session(&colleague, "mine").await;
    let res = set_repo(&app, &colleague, "mine", "diary").await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(body.contains("another session"), "{body}");
    assert!(!body.contains("session \\\"diary\\\""), "{body}");
    // Its name stays taken in the tenant.
    let res = app
        .post("/api/v1/sessions", &colleague, json!({"name": "diary"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;

    // The tenant's admin sees every session.
    let mut names = listed_names(&app, &alice_admin).await;
    names.sort();
    assert_eq!(names, ["diary", "diary-copy", "mine", "notes"]);
    assert_eq!(
        status_of(&app, "/api/v1/sessions/diary", &alice_admin).await,
        200
    );
}

#[actix_web::test]
async fn a_persons_schedule_runs_with_its_membership_and_pauses_when_it_cannot() {
    let (app, _provider) = spawn().await;
    let http = bare_client();
    let alice_admin = key_of(&app, "alice", "admin").await;
    let (cookie, csrf) = sign_in(&app, &http, "member").await.unwrap();
    let as_person =
        |req: reqwest::RequestBuilder| req.header("cookie", &cookie).header("x-csrf-token", &csrf);
    // A private session of the person, and a schedule on it.
    let res = as_person(http.post(app.url("/api/v1/sessions")))
        .json(&json!({"name": "mine", "visibility": "private"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = as_person(http.post(app.url("/api/v1/schedules")))
        .json(&json!({"name": "tick", "every": "1s", "overlap": "allow",
                      "job": {"session": "mine", "message": "tick"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let runs_of = || async {
        let page = get_json(&app, "/api/v1/schedules/tick/runs?limit=100", &alice_admin).await;
        page["data"].as_array().unwrap().clone()
    };
    assert!(
        eventually(10, || async {
            runs_of().await.iter().any(|r| r["job_id"].is_string())
        })
        .await,
        "it runs as its person: {:?}",
        runs_of().await
    );
    let makers = app.query_strings(
        "SELECT DISTINCT jobs.created_by AS s FROM jobs JOIN sessions ON sessions.id = jobs.session_id WHERE sessions.name = 'mine'",
    );
    assert_eq!(makers, ["person:member"]);

    // Made a viewer: the next run pauses the schedule and starts nothing.
    let members = get_json(&app, "/api/v1/admin/members", &alice_admin).await;
    let id = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == "member")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/members/{id}")))
        .header("X-API-Key", &alice_admin)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let schedule = || get_json(&app, "/api/v1/schedules/tick", &alice_admin);
    assert!(
        eventually(10, || async { schedule().await["data"]["paused"] == true }).await,
        "the schedule pauses"
    );
    let note = schedule().await["data"]["pause_note"].clone();
    assert!(
        note.as_str().unwrap().contains("can no longer run jobs"),
        "{note}"
    );
    let jobs = app.query_i64("SELECT COUNT(*) AS n FROM jobs");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM jobs"), jobs);
}

#[actix_web::test]
async fn groups_the_id_token_lacks_are_read_from_the_userinfo_endpoint() {
    let (app, _provider) = spawn().await;
    let http = bare_client();
    // `remote`'s ID token has no groups; its userinfo answer maps it to
    // alice as a member (without it, it would be refused as unmapped).
    let (cookie, _) = sign_in(&app, &http, "remote").await.unwrap();
    let me = me_of(&app, &http, &cookie).await;
    assert_eq!(me["data"]["person"], "remote", "{me}");
    assert_eq!(me["data"]["tenant"], "alice", "{me}");
    assert_eq!(me["data"]["role"], "member", "{me}");
    assert_eq!(
        app.query_strings(
            "SELECT source AS s FROM tenant_members WHERE subject = 'remote' AND tenant_id = 'alice'"
        ),
        ["groups"]
    );
}

#[actix_web::test]
async fn a_tenant_admin_manages_people_from_the_console() {
    let (app, _provider) = spawn().await;
    let http = bare_client();
    let alice_admin = key_of(&app, "alice", "admin").await;
    // The person signs in once: a member of alice.
    sign_in(&app, &http, "member").await.unwrap();
    let role_of_member =
        || app.query_strings("SELECT role AS s FROM tenant_members WHERE subject = 'member'");
    assert_eq!(role_of_member(), ["member"]);

    let b = Browser::start().await;
    b.sign_in(&app, &alice_admin).await;
    b.open(&app.url("/console/admin")).await;
    b.wait_for("#members").await;
    // A tenant's admin runs no tenants, and grants no role above its own.
    b.until(
        "no tenant form for a tenant's admin",
        "!document.getElementById('create-tenant')",
    )
    .await;
    let options = b.text("#invite-role").await;
    assert!(!options.contains("owner"), "{options}");
    assert!(b.text("#members").await.contains("member@example.com"));

    // Re-role the member from its row.
    let select = b.wait_for("tr[data-member='member'] select").await;
    select.select_by_value("viewer").await.unwrap();
    b.click("tr[data-member='member'] form[data-method='PATCH'] button")
        .await;
    assert!(
        eventually(10, || async { role_of_member() == ["viewer"] }).await,
        "the role changed"
    );

    // Invite, see the invitation, withdraw it.
    b.wait_for("#invite-email").await;
    b.fill("#invite-email", "new.person@example.com").await;
    b.wait_for("#invite-role")
        .await
        .select_by_value("viewer")
        .await
        .unwrap();
    b.click("#invite button").await;
    b.until(
        "the invitation is listed",
        "document.getElementById('invitations').textContent.includes('new.person@example.com')",
    )
    .await;
    assert_eq!(
        app.query_strings(
            "SELECT role AS s FROM member_invitations WHERE email = 'new.person@example.com'"
        ),
        ["viewer"]
    );
    b.click("tr[data-invitation='new.person@example.com'] button")
        .await;
    b.until(
        "the invitation is gone",
        "!document.getElementById('invitations').textContent.includes('new.person@example.com')",
    )
    .await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM member_invitations"),
        0
    );

    // A private session from the sessions page: listed with its badge.
    b.open(&app.url("/console/sessions")).await;
    b.fill("#new-name", "just-mine").await;
    b.click("#new-private").await;
    b.click("#create-session-button").await;
    b.until(
        "the new session's page opens",
        "location.pathname === '/console/sessions/just-mine'",
    )
    .await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE name = 'just-mine' AND private_to IS NOT NULL"),
        1
    );
    b.open(&app.url("/console/sessions")).await;
    let row = b.text("tr[data-session='just-mine']").await;
    assert!(row.contains("private"), "{row}");

    // The owner sees the tenants too.
    b.sign_out().await;
    b.sign_in(&app, ADMIN).await;
    b.open(&app.url("/console/admin")).await;
    b.wait_for("#create-tenant").await;
    b.close().await;
}

#[actix_web::test]
async fn an_email_domain_in_the_mapping_admits_the_people_of_that_domain() {
    // `stranger`'s groups map to nothing, but its verified email is of
    // example.com, which this mapping admits to bob as a viewer.
    let mapping = format!("{MAPPING},@Example.com=bob:viewer");
    let (app, _provider) = spawn_from(Options::fake().var("OIDC_GROUP_MAPPING", mapping)).await;
    let http = bare_client();
    let (cookie, _) = sign_in(&app, &http, "stranger").await.unwrap();
    let me = me_of(&app, &http, &cookie).await;
    assert_eq!(me["data"]["tenant"], "bob", "{me}");
    assert_eq!(me["data"]["role"], "viewer", "{me}");
    // The groups come first: `member` is in team-alice.
    let (cookie, _) = sign_in(&app, &http, "member").await.unwrap();
    let me = me_of(&app, &http, &cookie).await;
    assert_eq!(me["data"]["tenant"], "alice", "{me}");
}
