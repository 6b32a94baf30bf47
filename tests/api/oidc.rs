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
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let secret = claude_code_api_core::services::console_sessions::random_token();
    let provider = Provider::start(&public, &secret);
    let app = TestApp::spawn_with(
        Options::fake()
            .var("API_PORT", port.to_string())
            .var("PUBLIC_URL", public)
            .var("OIDC_ISSUER_URL", provider.issuer.clone())
            .var("OIDC_CLIENT_ID", CLIENT_ID)
            .var("OIDC_CLIENT_SECRET", secret)
            .var("OIDC_PROVIDER_NAME", PROVIDER_NAME)
            .var(
                "OIDC_GROUP_MAPPING",
                "admins=alice:admin,team-alice=alice:member,ghosts=no-such-tenant:member",
            ),
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
