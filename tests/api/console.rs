//! The web console: its cookie, CSRF and CSP rules over plain HTTP, and a
//! walk through every page in headless Chromium (chromedriver) that also
//! saves the screenshots in `docs/src/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// A client that neither follows redirects nor keeps cookies: each test
/// step says what it sends.
pub(crate) fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// `name=value` of a `Set-Cookie` header of `res` for `name`, and the header.
pub(crate) fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap_or_default().to_owned();
            (pair, v.to_owned())
        })
}

/// A url-encoded form body.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The value of the first hidden `csrf` field of a page.
pub(crate) fn csrf_field(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A signed-in console browser, as plain HTTP: its cookie and CSRF token.
struct Console {
    cookie: String,
    csrf: String,
}

/// Signs in with `key` through the form, asserting each step.
async fn sign_in(app: &TestApp, http: &reqwest::Client, key: &str) -> Console {
    let form = http.get(app.url("/console/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let (login_cookie, _) = set_cookie(&form, "cca_console_login").expect("login cookie");
    let html = form.text().await.unwrap();
    let token = csrf_field(&html);
    let res = http
        .post(app.url("/console/login"))
        .header("cookie", &login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", key), ("csrf", token.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console/sessions");
    let (cookie, header) = set_cookie(&res, "cca_console").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(attribute), "{attribute} missing: {header}");
    }
    // Plain HTTP here: no Secure (the browser would drop it).
    assert!(!header.contains("Secure"), "{header}");
    let page = http
        .get(app.url("/console/sessions"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    Console {
        cookie,
        csrf: csrf_field(&html),
    }
}

impl Console {
    fn get(&self, app: &TestApp, http: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        http.get(app.url(path)).header("cookie", &self.cookie)
    }
}

#[actix_web::test]
async fn the_cookie_stands_for_its_key_only_with_the_csrf_token() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let http = bare_client();

    // Every console page carries the strict policy; without a cookie, pages
    // send the browser to the sign-in form.
    let res = http.get(app.url("/console/sessions")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console/login");
    assert_eq!(res.headers()["content-security-policy"], CSP);
    let res = http.get(app.url("/console/login")).send().await.unwrap();
    assert_eq!(res.headers()["content-security-policy"], CSP);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let res = http.get(app.url("/console/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-security-policy"], CSP);
    assert!(res.text().await.unwrap().contains("no such console page"));
    assert!(!html.contains("style="), "no inline style: {html}");

    // A sign-in post without the form's token (a cross-site form) is refused.
    let res = http
        .post(app.url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", ALICE)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(set_cookie(&res, "cca_console").is_none());
    // A wrong key is a 401 page and no cookie.
    let form = http.get(app.url("/console/login")).send().await.unwrap();
    let (login_cookie, _) = set_cookie(&form, "cca_console_login").unwrap();
    let token = csrf_field(&form.text().await.unwrap());
    let res = http
        .post(app.url("/console/login"))
        .header("cookie", &login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", "not-a-key"), ("csrf", token.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(set_cookie(&res, "cca_console").is_none());
    // A page for a person, not a problem document.
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("That key is not valid"));

    // Behind a TLS-terminating proxy the console's cookies are Secure.
    let res = http
        .get(app.url("/console/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let (_, header) = set_cookie(&res, "cca_console_login").unwrap();
    assert!(
        header.contains("Secure") && header.contains("HttpOnly"),
        "{header}"
    );

    let alice = sign_in(&app, &http, ALICE).await;
    // The cookie reads the API as the key would.
    let res = alice
        .get(&app, &http, "/api/v1/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // It is no key for the other surfaces.
    let res = alice.get(&app, &http, "/v1/models").send().await.unwrap();
    assert_eq!(res.status(), 401);
    // A change without the CSRF header is refused, and nothing is made.
    let res = http
        .post(app.url("/api/v1/sessions"))
        .header("cookie", &alice.cookie)
        .json(&json!({"name": "forged"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = http
        .post(app.url("/api/v1/sessions"))
        .header("cookie", &alice.cookie)
        .header("x-csrf-token", "wrong")
        .json(&json!({"name": "forged"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    assert_eq!(app.query_i64("SELECT COUNT(*) AS n FROM sessions"), 0);
    // With it, it is the key's call.
    let res = http
        .post(app.url("/api/v1/sessions"))
        .header("cookie", &alice.cookie)
        .header("x-csrf-token", &alice.csrf)
        .json(&json!({"name": "made-in-console"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["user_id"], "alice");

    // Signing out needs the token too; without it the session lives on.
    let res = http
        .post(app.url("/console/logout"))
        .header("cookie", &alice.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = alice
        .get(&app, &http, "/api/v1/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .post(app.url("/console/logout"))
        .header("cookie", &alice.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", alice.csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let (_, removal) = set_cookie(&res, "cca_console").expect("removal cookie");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    // The row is gone: the old cookie is nobody.
    let res = alice
        .get(&app, &http, "/api/v1/sessions")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM console_sessions"),
        0
    );

    // Revoking the key ends its console sessions.
    let res = app
        .post(
            "/api/v1/admin/keys",
            ADMIN,
            json!({"tenant": "alice", "label": "temp"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let temp = sign_in(&app, &http, created["data"]["key"].as_str().unwrap()).await;
    let res = temp
        .get(&app, &http, "/api/v1/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = created["data"]["id"].as_str().unwrap();
    let res = app
        .post(&format!("/api/v1/admin/keys/{id}/revoke"), ADMIN, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = temp
        .get(&app, &http, "/api/v1/sessions")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = temp
        .get(&app, &http, "/console/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[actix_web::test]
async fn pages_show_a_tenant_only_its_own_and_agent_text_as_text() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let http = bare_client();
    app.create_session(ALICE, "alices").await;
    let hostile = "<script>window.pwned=1</script><img src=x onerror=alert(1)>";
    let (status, body) = app.chat(ALICE, "alices", hostile).await;
    assert_eq!(status, 200, "{body}");
    let (status, job) = app
        .create_job(ALICE, "alices", json!({"message": "a job of alice"}))
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["data"]["id"].as_str().unwrap().to_owned();
    app.wait_job(ALICE, "alices", &job_id, 60).await;

    // A session whose last turn failed says so.
    app.create_session(ALICE, "broken").await;
    let (status, _) = app.chat(ALICE, "broken", "CRASH").await;
    assert!(status >= 500, "{status}");

    let alice = sign_in(&app, &http, ALICE).await;
    let list = alice
        .get(&app, &http, "/console/sessions")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(r#"data-session="broken" data-status="error""#),
        "{list}"
    );
    assert!(
        list.contains(r#"data-session="alices" data-status="idle""#),
        "{list}"
    );
    let page = alice
        .get(&app, &http, "/console/sessions/alices")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    // The prompt (and whatever the agent echoed of it) is text, not markup.
    assert!(html.contains("&lt;script&gt;window.pwned=1&lt;"), "{html}");
    assert!(!html.contains("<script>window.pwned"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    let jobs = alice
        .get(&app, &http, "/console/jobs")
        .send()
        .await
        .unwrap();
    assert!(jobs.text().await.unwrap().contains(&job_id));

    let bob = sign_in(&app, &http, BOB).await;
    let list = bob
        .get(&app, &http, "/console/sessions")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("alices"), "{list}");
    assert!(list.contains("No sessions yet"));
    let res = bob
        .get(&app, &http, "/console/sessions/alices")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().contains("pwned"));
    let jobs = bob
        .get(&app, &http, "/console/jobs")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!jobs.contains(&job_id));
    let usage = bob
        .get(&app, &http, "/console/usage")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(usage.contains("No turns yet"), "{usage}");
    // Through the API too: alice's session is not bob's to see or delete.
    let res = bob
        .get(&app, &http, "/api/v1/sessions/alices")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = http
        .delete(app.url("/api/v1/sessions/alices"))
        .header("cookie", &bob.cookie)
        .header("x-csrf-token", &bob.csrf)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // The admin page is for admin keys.
    let res = bob.get(&app, &http, "/console/admin").send().await.unwrap();
    assert_eq!(res.status(), 403);
    // Another tenant's CSRF token does not go with this cookie.
    let res = http
        .post(app.url("/api/v1/sessions"))
        .header("cookie", &bob.cookie)
        .header("x-csrf-token", &alice.csrf)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
}

#[actix_web::test]
async fn guessing_keys_at_the_sign_in_form_is_limited_per_address() {
    let app = TestApp::spawn_with(Options::fake().var("AUTH_FAILURE_LIMIT", "2")).await;
    let http = bare_client();
    let attempt = |key: &'static str| {
        let (app, http) = (&app, &http);
        async move {
            let form = http.get(app.url("/console/login")).send().await.unwrap();
            let (login_cookie, _) = set_cookie(&form, "cca_console_login").unwrap();
            let token = csrf_field(&form.text().await.unwrap());
            http.post(app.url("/console/login"))
                .header("cookie", &login_cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&[("key", key), ("csrf", token.as_str())]))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(attempt("guess-1").await, 401);
    assert_eq!(attempt("guess-2").await, 401);
    // The budget is spent: even the right key waits, as on the API.
    assert_eq!(attempt("guess-3").await, 429);
    assert_eq!(attempt(ALICE).await, 429);
    let res = app.get("/api/v1/sessions", ALICE).send().await.unwrap();
    assert_eq!(res.status(), 429);
}

// ---------------------------------------------------------------- browser

/// chromedriver on a port of its own, and a headless Chromium session.
pub(crate) struct Browser {
    driver: Child,
    pub(crate) client: Client,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_program(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = PathBuf::from(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "{} not found: install chromium and chromium-driver (scripts/test.sh does)",
        names.join(" / ")
    );
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        let driver_path = find_program(&["chromedriver"]);
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--hide-scrollbars", "--force-device-scale-factor=1"],
            }),
        );
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Browser { driver, client },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a browser: {last:?}");
    }

    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub(crate) async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    /// Waits until `script` (a JS expression) is true.
    pub(crate) async fn until(&self, what: &str, script: &str) {
        let body = format!("return !!({script});");
        for _ in 0..600 {
            if self.client.execute(&body, vec![]).await.unwrap() == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = self.text("body").await;
        panic!("{what}: still not true after 60 s: {script}\npage: {text}");
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let e = self.wait_for(css).await;
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    pub(crate) async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    /// Sends `message` from the session page and waits until the transcript
    /// holds `answer` and the turn has ended.
    async fn send_and_wait(&self, message: &str, answer: &str) {
        self.fill("#message", message).await;
        self.click("#send").await;
        let answer = serde_json::to_string(answer).unwrap();
        self.until(
            "the streamed answer appears",
            &format!("document.getElementById('transcript').textContent.includes({answer})"),
        )
        .await;
        self.until("the turn ends", "document.body.dataset.status === 'idle'")
            .await;
    }

    pub(crate) async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Saves the page at desktop and phone width.
    async fn screenshots(&self, name: &str) {
        self.screenshots_at(name, None).await;
    }

    /// Saves the page at desktop and phone width, scrolled to show `css`
    /// (else from the top).
    async fn screenshots_at(&self, name: &str, css: Option<&str>) {
        let dir = writable_or_temp(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/src/screenshots"),
            "cca-screenshots",
        );
        for (suffix, w, h) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.client.set_window_size(w, h).await.unwrap();
            let scroll = match css {
                Some(css) => {
                    format!("document.querySelector({css:?}).scrollIntoView({{block: 'center'}})")
                }
                None => "window.scrollTo(0, 0)".to_owned(),
            };
            self.client.execute(&scroll, vec![]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = self.client.screenshot().await.unwrap();
            assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    pub(crate) async fn sign_in(&self, app: &TestApp, key: &str) {
        self.open(&app.url("/console")).await;
        self.wait_for("#login-form").await;
        assert_eq!(self.path().await, "/console/login");
        self.fill("#key", key).await;
        self.click("#sign-in").await;
        self.wait_for("#sign-out").await;
        assert_eq!(self.path().await, "/console/sessions");
    }

    pub(crate) async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait_for("#login-form").await;
    }

    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[actix_web::test]
async fn a_team_member_works_a_session_from_the_browser() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;

    // Sign in; create a session that asks before writing.
    b.open(&app.url("/console/login")).await;
    b.wait_for("#login-form").await;
    b.screenshots("login").await;
    b.sign_in(&app, ALICE).await;
    b.fill("#new-name", "demo").await;
    b.click("#new-mode option[value='default']").await;
    b.click("#create-session-button").await;
    b.wait_for("#composer").await;
    assert_eq!(b.path().await, "/console/sessions/demo");
    b.until(
        "the stream is live",
        "document.getElementById('conn').textContent === 'live'",
    )
    .await;

    // A message; its answer streams into the transcript.
    b.send_and_wait(
        "hello from the console",
        "Mock reply to: hello from the console",
    )
    .await;

    // Agent text that looks like markup stays text.
    b.send_and_wait(
        "<script>window.pwned=1</script>",
        "Mock reply to: <script>window.pwned=1</script>",
    )
    .await;
    assert_eq!(
        b.client
            .execute("return typeof window.pwned", vec![])
            .await
            .unwrap(),
        json!("undefined")
    );

    // Stop interrupts a running turn; its partial answer stays.
    b.fill("#message", "[[slow 100 200]]").await;
    b.click("#send").await;
    b.until(
        "the slow answer streams",
        "document.getElementById('transcript').textContent.includes('chunk1')",
    )
    .await;
    b.click("#interrupt").await;
    b.until(
        "the turn is interrupted",
        "document.body.dataset.status === 'idle' \
         && document.getElementById('transcript').textContent.includes('interrupted')",
    )
    .await;

    // A write waits for approval: a card with the diff; allowing it ends the turn.
    b.fill(
        "#message",
        "[[write note.txt]]written from the console[[/write]]",
    )
    .await;
    b.click("#send").await;
    let card = b.wait_for("#live-approvals .approval").await;
    let text = card.text().await.unwrap();
    assert!(text.contains("+ written from the console"), "{text}");
    // The file as the workspace sees it.
    assert!(text.starts_with("Write note.txt"), "{text}");
    b.until(
        "the status says it waits",
        "document.getElementById('status').textContent === 'waiting for approval'",
    )
    .await;
    assert!(b
        .wait_for("#waiting-banner")
        .await
        .is_displayed()
        .await
        .unwrap());
    b.screenshots_at("session-approval", Some("#live-approvals .approval"))
        .await;
    b.click("#live-approvals .approval button.allow").await;
    b.until("the turn ends", "document.body.dataset.status === 'idle'")
        .await;
    b.until(
        "the banner goes",
        "document.getElementById('waiting-banner').hidden",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "demo").join("note.txt")).unwrap(),
        "written from the console"
    );
    b.until(
        "the last turn's change is listed",
        "document.getElementById('changes').textContent.includes('note.txt')",
    )
    .await;
    b.until(
        "the file is listed",
        "document.getElementById('files').textContent.includes('note.txt')",
    )
    .await;

    // Upload into a folder; the list links to the download.
    let local = app.root.path().join("upload-me.txt");
    std::fs::write(&local, "uploaded from the browser").unwrap();
    b.wait_for("#upload-file")
        .await
        .send_keys(&local.to_string_lossy())
        .await
        .unwrap();
    b.fill("#upload-path", "docs").await;
    b.click("#upload button[type=submit]").await;
    b.until(
        "the upload is listed",
        "document.getElementById('files').textContent.includes('docs/upload-me.txt')",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "demo").join("docs/upload-me.txt")).unwrap(),
        "uploaded from the browser"
    );
    let href = b
        .wait_for("#files a[href$='docs/upload-me.txt']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let cookie = b
        .client
        .get_named_cookie("cca_console")
        .await
        .unwrap()
        .value()
        .to_owned();
    let download = app
        .client
        .get(app.url(&href))
        .header("cookie", format!("cca_console={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().await.unwrap(), "uploaded from the browser");

    // A reload shows the same transcript from history, hostile text as text.
    b.client.refresh().await.unwrap();
    b.wait_for("#composer").await;
    let transcript = b.text("#transcript").await;
    assert!(transcript.contains("Mock reply to: hello from the console"));
    assert!(transcript.contains("<script>window.pwned=1</script>"));
    assert_eq!(
        b.client
            .execute("return typeof window.pwned", vec![])
            .await
            .unwrap(),
        json!("undefined")
    );
    b.screenshots("session").await;

    // A turn another client runs shows live, its prompt once it is stored.
    app.chat_ok(ALICE, "demo", "sent by a script").await;
    b.until(
        "the other client's prompt and answer show",
        "document.getElementById('transcript').textContent.includes('prompt from another client')\
         && document.getElementById('transcript').textContent.includes('Mock reply to: sent by a script')",
    )
    .await;

    // An approval asked by an API client shows on the sessions list with a
    // badge, and is allowed from there.
    b.open(&app.url("/console/sessions")).await;
    b.wait_for("tr[data-session='demo'][data-status='idle']")
        .await;
    let asking =
        crate::events::stream_chat(&app, "demo", "[[write list.txt]]from the list[[/write]]");
    // The list refreshes itself when a session's state moves.
    b.wait_for(".badge.pending").await;
    b.until(
        "the title counts it",
        "document.title.startsWith('(1 waiting)')",
    )
    .await;
    b.screenshots("sessions").await;
    b.click(".approvals-row button.allow").await;
    let events = tokio::time::timeout(Duration::from_secs(60), asking)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "demo").join("list.txt")).unwrap(),
        "from the list"
    );

    // Delete a session from the list.
    app.create_session(ALICE, "scratch").await;
    b.open(&app.url("/console/sessions")).await;
    b.click("tr[data-session='scratch'] button.danger").await;
    b.client.accept_alert().await.unwrap();
    b.until(
        "the row is gone",
        "document.querySelector(\"tr[data-session='scratch']\") === null \
         && document.querySelector(\"tr[data-session='demo']\") !== null",
    )
    .await;
    assert_eq!(
        app.get("/api/v1/sessions/scratch", ALICE)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Jobs: a finished one's webhook deliveries, redelivered from the page;
    // a slow one cancelled.
    app.create_session(ALICE, "batch").await;
    let receiver = crate::receiver::Receiver::start(&[500, 200]);
    let (status, job) = app
        .create_job(
            ALICE,
            "batch",
            json!({"message": "a quick job", "webhook_url": receiver.url}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let quick = job["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.wait_job(ALICE, "batch", &quick, 60).await["status"],
        "done"
    );
    assert!(eventually(30, || async { receiver.received().len() == 2 }).await);
    let (status, job) = app
        .create_job(ALICE, "batch", json!({"message": "[[slow 200 200]]"}))
        .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["data"]["id"].as_str().unwrap().to_owned();
    b.open(&app.url("/console/jobs")).await;
    b.wait_for(&format!("[data-job='{job_id}'] .cancel-job"))
        .await;
    let delivery = format!("[data-job='{quick}'] .delivery");
    b.until(
        "the delivery shows both attempts",
        &format!("document.querySelectorAll(\"{delivery} tbody tr\").length === 2"),
    )
    .await;
    assert_eq!(
        b.text(&format!("[data-job='{quick}'] .answer")).await,
        "Mock reply to: a quick job"
    );
    b.screenshots("jobs").await;
    b.click(&format!("{delivery} button")).await;
    assert!(eventually(30, || async { receiver.received().len() == 3 }).await);
    let sent = receiver.received();
    assert_eq!(
        sent[2].webhook_id, sent[0].webhook_id,
        "the same event again"
    );
    b.open(&app.url("/console/jobs")).await;
    b.until(
        "the redelivery is listed",
        &format!("document.querySelectorAll(\"{delivery} tbody tr\").length === 3"),
    )
    .await;
    b.click(&format!("[data-job='{job_id}'] .cancel-job")).await;
    b.client.accept_alert().await.unwrap();
    let done = app.wait_job(ALICE, "batch", &job_id, 60).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    b.wait_for(&format!("[data-job='{job_id}'][data-status='cancelled']"))
        .await;

    // Usage: spend against the tenant's budget, and the per-day chart.
    let res = app
        .client
        .patch(app.url("/api/v1/admin/tenants/alice"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"budget_usd": 0.01}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    b.open(&app.url("/console/usage")).await;
    b.wait_for("svg.chart rect.bar").await;
    b.wait_for("svg.gauge rect.gauge-fill").await;
    assert!(b.text("#budget").await.contains("$0.01"));
    b.screenshots("usage").await;

    // Signing out ends the cookie's use on the API too.
    let signed_out = b
        .client
        .get_named_cookie("cca_console")
        .await
        .unwrap()
        .value()
        .to_owned();
    b.sign_out().await;
    let res = app
        .client
        .get(app.url("/api/v1/sessions"))
        .header("cookie", format!("cca_console={signed_out}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Another tenant sees none of it.
    b.sign_in(&app, BOB).await;
    b.wait_for("#no-sessions").await;
    assert!(!b.text("main").await.contains("demo"));
    b.open(&app.url("/console/sessions/demo")).await;
    let source = b.client.source().await.unwrap();
    assert!(source.contains("<h1>404</h1>"), "{source}");
    b.open(&app.url("/console/jobs")).await;
    b.wait_for("#no-jobs").await;
    b.sign_out().await;

    // An admin makes a key (shown once, and it works), then revokes it.
    b.sign_in(&app, ADMIN).await;
    b.open(&app.url("/console/admin")).await;
    b.fill("#key-label", "made in the console").await;
    b.click("#create-key button[type=submit]").await;
    b.until(
        "the new key is shown",
        "!document.getElementById('new-key').hidden",
    )
    .await;
    let key = b.text("#new-key-value").await;
    assert!(key.starts_with("cca_"), "{key}");
    assert_eq!(
        app.get("/api/v1/sessions", &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    b.screenshots("admin").await;
    b.open(&app.url("/console/admin")).await;
    let row = "tr:not(.revoked) td[data-label='Label']";
    b.wait_for(row).await;
    b.client
        .execute(
            "const rows = [...document.querySelectorAll('#keys tbody tr')]; \
             const row = rows.find(r => r.textContent.includes('made in the console')); \
             row.querySelector('button').click();",
            vec![],
        )
        .await
        .unwrap();
    b.client.accept_alert().await.unwrap();
    b.until(
        "the key shows revoked",
        "[...document.querySelectorAll('#keys tr.revoked')].some(r => r.textContent.includes('made in the console'))",
    )
    .await;
    assert_eq!(
        app.get("/api/v1/sessions", &key)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    b.close().await;
}

#[actix_web::test]
async fn the_console_shows_a_repository_sessions_branch_and_diff() {
    let app = TestApp::spawn_with(Options::default().var("GIT_ALLOWED_HOSTS", "127.0.0.1")).await;
    let remote = tempfile::tempdir().unwrap();
    let projects = crate::git_server::bare_repo(remote.path(), "first line\n");
    let server = crate::git_server::GitServer::start("127.0.0.1:0", projects, None);
    let res = app
        .post(
            "/api/v1/repos",
            ALICE,
            json!({"name": "app", "url": server.url()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    app.create_session_with(ALICE, json!({"name": "r", "repo": {"name": "app"}}))
        .await;
    app.chat_ok(
        ALICE,
        "r",
        "[[bash]]echo CONSOLE-DIFF-LINE >> README[[/bash]]",
    )
    .await;
    // A session not made from a repository shows no branch card.
    app.create_session(ALICE, "plain").await;

    let b = Browser::start().await;
    b.sign_in(&app, ALICE).await;
    b.open(&app.url("/console/sessions/r")).await;
    b.until(
        "the branch card",
        "!document.getElementById('git').hidden && document.getElementById('git-diff').textContent.includes('CONSOLE-DIFF-LINE')",
    )
    .await;
    let card = b.text("#git").await;
    assert!(
        card.contains("cca/r") && card.contains("from main"),
        "{card}"
    );
    assert!(card.contains("README"), "{card}");
    b.open(&app.url("/console/sessions/plain")).await;
    b.wait_for("#files").await;
    b.until(
        "the files loaded",
        "!document.getElementById('files').textContent.includes('Loading')",
    )
    .await;
    let hidden = b
        .client
        .execute("return document.getElementById('git').hidden;", vec![])
        .await
        .unwrap();
    assert_eq!(hidden, json!(true));
    b.close().await;
}

#[actix_web::test]
async fn the_schedules_page_shows_each_schedule_with_its_next_run() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let http = bare_client();
    for (name, paused) in [("hourly-triage", false), ("frozen", true)] {
        let res = app
            .post(
                "/api/v1/schedules",
                ALICE,
                json!({"name": name, "every": "1h", "paused": paused,
                       "job": {"new_session": {}, "message": "<b>triage</b>"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let view = get_json(&app, "/api/v1/schedules/hourly-triage", ALICE).await;
    let next = view["data"]["next_run_at"]
        .as_str()
        .unwrap()
        .replace('T', " ");
    let alice = sign_in(&app, &http, ALICE).await;
    let html = alice
        .get(&app, &http, "/console/schedules")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"data-schedule="hourly-triage" data-paused="false""#),
        "{html}"
    );
    assert!(html.contains("every 3600s"), "{html}");
    assert!(html.contains(&next[..19]), "next run {next} shown: {html}");
    assert!(
        html.contains(r#"data-schedule="frozen" data-paused="true""#),
        "{html}"
    );
    assert!(html.contains(r#"href="/console/schedules" class="active""#));
    let bob = sign_in(&app, &http, BOB).await;
    let html = bob
        .get(&app, &http, "/console/schedules")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("no-schedules"), "{html}");
    assert!(!html.contains("hourly-triage"));
}

#[actix_web::test]
async fn the_pipelines_page_draws_each_pipeline_as_its_graph() {
    let app = TestApp::spawn().await;
    let http = bare_client();
    let res = app
        .post(
            "/api/v1/pipelines",
            ALICE,
            json!({"name": "<i>docs</i>", "steps": [
                {"id": "plan", "new_session": {}, "message": "plan it"},
                {"id": "left", "depends_on": ["plan"], "new_session": {}, "message": "left of {{steps.plan.result}}"},
                {"id": "right", "depends_on": ["plan"], "new_session": {}, "message": "right"},
                {"id": "review", "depends_on": ["left", "right"], "new_session": {}, "message": "review"},
            ]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let created: Value = res.json().await.unwrap();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    assert!(
        eventually(90, || async {
            get_json(&app, &format!("/api/v1/pipelines/{id}"), ALICE).await["data"]["status"]
                == "done"
        })
        .await,
        "the pipeline ends"
    );
    let alice = sign_in(&app, &http, ALICE).await;
    let html = alice
        .get(&app, &http, "/console/pipelines")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(r#"data-pipeline="{id}" data-status="done""#)),
        "{html}"
    );
    assert!(
        html.contains("&lt;i&gt;docs&lt;&#x2f;i&gt;"),
        "the name is text: {html}"
    );
    // Three layers: plan, then left and right side by side, then review.
    let at = |step: &str| {
        html.find(&format!(r#"data-step="{step}" data-state="done""#))
            .unwrap_or_else(|| panic!("{step} drawn done: {html}"))
    };
    let layers: Vec<usize> = html.match_indices("graph-layer").map(|(i, _)| i).collect();
    assert_eq!(layers.len(), 3, "{html}");
    assert!(at("plan") > layers[0] && at("plan") < layers[1]);
    assert!(at("left") > layers[1] && at("right") > layers[1] && at("left") < layers[2]);
    assert!(at("review") > layers[2]);
    assert!(html.contains("after left, right"), "{html}");
    let bob = sign_in(&app, &http, BOB).await;
    let html = bob
        .get(&app, &http, "/console/pipelines")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("no-pipelines") && !html.contains(&id),
        "{html}"
    );
}
