//! The agent's network, tried from inside the agent (the real CLI running
//! the mock model's commands): a namespace of its own with no listener of
//! the host in it, the model gateway reached through the server only, and
//! with `AGENT_NETWORK=proxy` the egress proxy letting through what the
//! tenant's allowlist names, and nothing else.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::helpers::*;

/// The address the tests' "allowed host" listens on: loopback (so nothing
/// leaves the machine) but not `127.0.0.1`, which the agent reaches
/// directly in its own namespace (`NO_PROXY`).
const ALLOWED_IP: &str = "127.0.0.2";

fn tool_output(answer: &Value) -> String {
    answer["content"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("Tool result: ")
        .to_owned()
}

fn field<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
}

/// A TCP listener that counts connections and answers each with `marker`.
struct Listener {
    addr: SocketAddr,
    /// The request lines received, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    fn start(bind: &str, marker: &'static str) -> Listener {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    seen.lock().unwrap().push(line.trim().to_owned());
                    // The rest of the head.
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{marker}",
                        marker.len()
                    );
                });
            }
        });
        Listener { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics_base.clone().expect("metrics listener");
    app.client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const NOT_ALLOWED: &str = r#"cca_agent_egress_requests_total{outcome="not_allowed"}"#;

async fn set_allowlist(app: &TestApp, tenant: &str, hosts: Value) -> Value {
    let res = app
        .client
        .put(app.url(&format!("/api/v1/admin/tenants/{tenant}/egress")))
        .header("X-API-Key", ADMIN)
        .json(&json!({ "allowed_hosts": hosts }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["data"].clone()
}

/// The host's own non-loopback IPv4 addresses (where it has any).
fn host_addresses() -> Vec<String> {
    let out = Command::new("hostname").arg("-I").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .split_whitespace()
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn no_listener_of_the_host_is_reachable_from_the_agent() {
    let app = TestApp::spawn_with(Options::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    let health = app.health().await;
    assert_eq!(health["sandbox"]["network"], "proxy", "{health}");
    // Listening on every address of the host, loopback included.
    let marker = Listener::start("0.0.0.0:0", "HOST-LISTENER-MARKER");
    let api: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let metrics: u16 = app
        .metrics_base
        .as_ref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let port = marker.addr.port();
    let mut targets: Vec<String> = [api, metrics, port]
        .iter()
        .map(|p| format!("127.0.0.1/{p}"))
        .collect();
    targets.extend(host_addresses().iter().map(|a| format!("{a}/{port}")));
    app.create_session(ALICE, "n").await;
    let probe = format!(
        "[[bash]]for t in {targets}; do (exec 3<>/dev/tcp/${{t%/*}}/${{t#*/}}) 2>/dev/null && echo open=$t; done; \
         curl -s -m 5 --noproxy '*' http://127.0.0.1:{api}/health >/dev/null; echo api=$?; \
         curl -s -m 5 --noproxy '*' http://1.1.1.1/ >/dev/null; echo direct=$?; \
         echo through=$(curl -s -m 5 --noproxy '' -x \"$HTTP_PROXY\" http://127.0.0.1:{port}/ | grep -o 'not on the egress allowlist of tenant [a-z]*'); \
         echo done[[/bash]]",
        targets = targets.join(" "),
    );
    let answer = app.chat_ok(ALICE, "n", &probe).await;
    let out = tool_output(&answer);
    assert!(out.contains("done"), "{out}");
    assert!(!out.contains("open="), "{out}");
    assert!(!out.contains("HOST-LISTENER-MARKER"), "{out}");
    // curl: 7 = could not connect (the namespace's loopback has nothing there).
    assert_eq!(field(&out, "api"), Some("7"), "{out}");
    // No route out: 7 (network unreachable), never an answer.
    assert_ne!(field(&out, "direct"), Some("0"), "{out}");
    // The host's loopback through the proxy: not on the tenant's list.
    assert_eq!(
        field(&out, "through"),
        Some("not on the egress allowlist of tenant alice"),
        "{out}"
    );
    assert!(marker.requests().is_empty(), "{:?}", marker.requests());
    // The chat itself went through the gateway's socket: it answered.
    assert!(app.chat_ok(ALICE, "n", "still talking?").await["content"].is_string());
}

#[actix_web::test]
async fn with_network_none_the_agent_reaches_only_the_model() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("AGENT_NETWORK", "none")
            .var("AGENT_EGRESS_PRIVATE_HOSTS", ALLOWED_IP),
    )
    .await;
    assert_eq!(app.health().await["sandbox"]["network"], "none");
    let origin = Listener::start(&format!("{ALLOWED_IP}:0"), "ORIGIN-MARKER");
    set_allowlist(&app, "alice", json!([ALLOWED_IP])).await;
    app.create_session(ALICE, "z").await;
    let answer = app
        .chat_ok(
            ALICE,
            "z",
            &format!(
                "[[bash]]echo proxy=${{HTTPS_PROXY:-unset}}; curl -s -m 5 http://{}/; echo curl=$?; \
                 (exec 3<>/dev/tcp/127.0.0.1/3128) 2>/dev/null && echo open=3128; echo done[[/bash]]",
                origin.addr
            ),
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(field(&out, "proxy"), Some("unset"), "{out}");
    assert_ne!(field(&out, "curl"), Some("0"), "{out}");
    assert!(
        !out.contains("open=") && !out.contains("ORIGIN-MARKER"),
        "{out}"
    );
    assert!(origin.requests().is_empty());

    // The relay runs the CLI as its child, and goes when the session does.
    let cli_id = app.query_strings("SELECT cli_session_id AS s FROM sessions WHERE name = 'z'");
    let relays = || relays_of(&cli_id[0]);
    assert_eq!(relays(), 1);
    let res = app
        .delete("/api/v1/sessions/z", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(eventually(10, || async { relays() == 0 }).await);
}

/// Relay processes whose command line names the CLI session `cli_id`.
fn relays_of(cli_id: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .is_ok_and(|c| {
                    c.starts_with("/run/claude-code-api/relay sandbox-relay ") && c.contains(cli_id)
                })
        })
        .count()
}

#[actix_web::test]
async fn the_proxy_lets_through_the_tenants_allowlist_only() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("METRICS_ADDR", "127.0.0.1:0")
            .var("AGENT_EGRESS_PRIVATE_HOSTS", ALLOWED_IP),
    )
    .await;
    let origin = Listener::start(&format!("{ALLOWED_IP}:0"), "ORIGIN-MARKER-7731");
    let data = set_allowlist(&app, "alice", json!([ALLOWED_IP, "*.Example.org"])).await;
    assert_eq!(
        data,
        json!({"tenant": "alice", "allowed_hosts": ["*.example.org", ALLOWED_IP], "network": "proxy"})
    );
    let before = sample(&scrape(&app).await, NOT_ALLOWED);

    app.create_session(ALICE, "p").await;
    let answer = app
        .chat_ok(
            ALICE,
            "p",
            &format!(
                "[[bash]]echo got=$(curl -s -m 10 http://{addr}/allowed?x=1); \
                 echo denied=$(curl -s -m 10 http://denied.example.com/ | grep -o 'denied.example.com is not on the egress allowlist of tenant [a-z]*'); \
                 echo how=$(curl -s -m 10 http://denied.example.com/ | grep -c 'PUT /api/v1/admin/tenants/alice/egress'); \
                 curl -s -m 10 -o /dev/null https://denied.example.com/; echo tls=$?; \
                 echo code=$(curl -s -m 10 -o /dev/null -w '%{{http_code}}' http://denied.example.com/)[[/bash]]",
                addr = origin.addr
            ),
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(field(&out, "got"), Some("ORIGIN-MARKER-7731"), "{out}");
    assert_eq!(
        field(&out, "denied"),
        Some("denied.example.com is not on the egress allowlist of tenant alice"),
        "{out}"
    );
    assert_eq!(field(&out, "how"), Some("1"), "{out}");
    // https: the CONNECT is refused (curl 56: the proxy answered 403).
    assert_eq!(field(&out, "tls"), Some("56"), "{out}");
    assert_eq!(field(&out, "code"), Some("403"), "{out}");
    // The origin saw the one allowed request, in origin form.
    assert_eq!(origin.requests(), ["GET /allowed?x=1 HTTP/1.1"]);
    // Refusals are counted (four in this turn).
    let after = sample(&scrape(&app).await, NOT_ALLOWED);
    assert!(after - before >= 4.0, "{before} -> {after}");

    // Another tenant's list does not apply to bob's agent.
    app.create_session(BOB, "q").await;
    let answer = app
        .chat_ok(
            BOB,
            "q",
            &format!(
                "[[bash]]echo bob=$(curl -s -m 10 http://{}/ | grep -o 'not on the egress allowlist of tenant [a-z]*')[[/bash]]",
                origin.addr
            ),
        )
        .await;
    assert_eq!(
        field(&tool_output(&answer), "bob"),
        Some("not on the egress allowlist of tenant bob"),
        "{answer}"
    );
    assert_eq!(origin.requests().len(), 1);

    // A list change applies to the running agent at once: emptied, refused.
    set_allowlist(&app, "alice", json!([])).await;
    let answer = app
        .chat_ok(
            ALICE,
            "p",
            &format!(
                "[[bash]]echo code=$(curl -s -m 10 -o /dev/null -w '%{{http_code}}' http://{}/)[[/bash]]",
                origin.addr
            ),
        )
        .await;
    assert_eq!(
        field(&tool_output(&answer), "code"),
        Some("403"),
        "{answer}"
    );
    assert_eq!(origin.requests().len(), 1);
}

#[actix_web::test]
async fn a_private_address_needs_the_operator_as_well_as_the_tenant() {
    // The tenant lists the host, the operator does not exempt it.
    let app = TestApp::spawn().await;
    let origin = Listener::start(&format!("{ALLOWED_IP}:0"), "ORIGIN-MARKER");
    set_allowlist(&app, "alice", json!([ALLOWED_IP, "localhost"])).await;
    app.create_session(ALICE, "r").await;
    let answer = app
        .chat_ok(
            ALICE,
            "r",
            &format!(
                "[[bash]]echo private=$(curl -s -m 10 http://{}/ | grep -o 'AGENT_EGRESS_PRIVATE_HOSTS'); \
                 echo code=$(curl -s -m 10 --noproxy '' -o /dev/null -w '%{{http_code}}' http://localhost:{}/)[[/bash]]",
                origin.addr,
                origin.addr.port()
            ),
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(
        field(&out, "private"),
        Some("AGENT_EGRESS_PRIVATE_HOSTS"),
        "{out}"
    );
    assert_eq!(field(&out, "code"), Some("403"), "{out}");
    assert!(origin.requests().is_empty());
}

#[actix_web::test]
async fn git_clone_over_http_works_for_an_allowed_host() {
    let app =
        TestApp::spawn_with(Options::default().var("AGENT_EGRESS_PRIVATE_HOSTS", ALLOWED_IP)).await;
    let repos = tempfile::tempdir().unwrap();
    let projects = crate::git_server::bare_repo(repos.path(), "CLONED-MARKER-5150");
    let server =
        crate::git_server::GitServer::start(&format!("{ALLOWED_IP}:0"), projects, None).addr;
    set_allowlist(&app, "alice", json!([ALLOWED_IP])).await;
    app.create_session(ALICE, "g").await;
    let answer = app
        .chat_ok(
            ALICE,
            "g",
            &format!(
                "[[bash]]git clone -q http://{server}/repo.git cloned 2>&1 | tail -2; \
                 echo readme=$(cat cloned/README)[[/bash]]"
            ),
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(field(&out, "readme"), Some("CLONED-MARKER-5150"), "{out}");
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "g").join("cloned/README")).unwrap(),
        "CLONED-MARKER-5150"
    );
}

/// A package registry of one package, `cca-probe` 1.0.0, whose module
/// exports `marker`: npm's two requests (the package document, then the
/// tarball) answered on `bind`.
fn start_registry(bind: &str, marker: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let tarball = {
        let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (path, body) in [
            (
                "package/package.json",
                r#"{"name": "cca-probe", "version": "1.0.0", "main": "index.js"}"#.to_owned(),
            ),
            (
                "package/index.js",
                format!("module.exports = {marker:?};\n"),
            ),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, path, body.as_bytes())
                .unwrap();
        }
        archive.into_inner().unwrap().finish().unwrap()
    };
    let document = json!({
        "name": "cca-probe",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {
            "name": "cca-probe", "version": "1.0.0", "main": "index.js",
            "dist": {"tarball": format!("http://{addr}/cca-probe/-/cca-probe-1.0.0.tgz")},
        }},
    })
    .to_string()
    .into_bytes();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (tarball, document) = (tarball.clone(), document.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let (kind, body) = if line.contains(".tgz") {
                    ("application/octet-stream", tarball)
                } else {
                    ("application/json", document)
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    addr
}

#[actix_web::test]
async fn npm_install_from_an_allowed_registry_works_through_the_proxy() {
    let app =
        TestApp::spawn_with(Options::default().var("AGENT_EGRESS_PRIVATE_HOSTS", ALLOWED_IP)).await;
    let registry = start_registry(&format!("{ALLOWED_IP}:0"), "NPM-MARKER-6620");
    app.create_session(ALICE, "n").await;
    let install = format!(
        "[[bash]]npm install --registry http://{registry}/ --no-audit --no-fund \
         --no-update-notifier cca-probe > npm.log 2>&1; echo status=$?; \
         echo module=$(node -e 'console.log(require(\"cca-probe\"))')[[/bash]]"
    );
    // Not on the tenant's allowlist: refused by the proxy, nothing installed.
    let answer = app.chat_ok(ALICE, "n", &install).await;
    let out = tool_output(&answer);
    assert_ne!(field(&out, "status"), Some("0"), "{out}");
    let workspace = app.workspace("alice", "n");
    assert!(!workspace.join("node_modules/cca-probe").exists());
    // Allowed: the package arrives and loads.
    set_allowlist(&app, "alice", json!([ALLOWED_IP])).await;
    let answer = app.chat_ok(ALICE, "n", &install).await;
    let out = tool_output(&answer);
    let log = std::fs::read_to_string(workspace.join("npm.log")).unwrap_or_default();
    assert_eq!(field(&out, "status"), Some("0"), "{out}\n{log}");
    assert_eq!(
        field(&out, "module"),
        Some("NPM-MARKER-6620"),
        "{out}\n{log}"
    );
    assert!(workspace.join("node_modules/cca-probe/index.js").is_file());
}

/// An HTTPS origin on `ALLOWED_IP` (`openssl s_server -WWW`, serving the
/// files of its folder) with a certificate of its own; killed when dropped.
struct HttpsOrigin {
    child: std::process::Child,
    port: u16,
}

impl Drop for HttpsOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HttpsOrigin {
    /// Serves `dir`, where `cert.pem` (the certificate, its own CA) is made.
    async fn start(dir: &std::path::Path) -> HttpsOrigin {
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-keyout", "key.pem", "-out", "cert.pem"])
            .args(["-subj", &format!("/CN={ALLOWED_IP}")])
            // The CLI's client checks a certificate reached through the
            // proxy for an IP-literal URL against the name `localhost`.
            .args([
                "-addext",
                &format!("subjectAltName=IP:{ALLOWED_IP},DNS:localhost"),
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let port = TcpListener::bind(format!("{ALLOWED_IP}:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server", "-quiet", "-WWW", "-cert", "cert.pem", "-key", "key.pem",
            ])
            .args(["-accept", &format!("{ALLOWED_IP}:{port}")])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let origin = HttpsOrigin { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect((ALLOWED_IP, port)).is_ok() {
                return origin;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("openssl s_server did not listen on {port}");
    }
}

#[actix_web::test]
async fn webfetch_of_an_allowed_host_works_through_the_proxy() {
    let site = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        site.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        site.path().join("page.html"),
        "<html><body><p>WEBFETCH-MARKER-3141</p></body></html>",
    )
    .unwrap();
    let origin = HttpsOrigin::start(site.path()).await;
    // The agent trusts the origin's certificate through its template.
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("fetcher.yaml"),
        format!(
            "description: trusts the test origin\npermission_mode: bypassPermissions\n\
             env:\n  NODE_EXTRA_CA_CERTS: {}\n",
            site.path().join("cert.pem").display()
        ),
    )
    .unwrap();
    let app = TestApp::spawn_with(
        Options::default()
            .var("AGENT_EGRESS_PRIVATE_HOSTS", ALLOWED_IP)
            .var("TEMPLATES_DIR", templates.path().to_string_lossy())
            .var("CLAUDE_ADD_DIRS", site.path().to_string_lossy()),
    )
    .await;
    app.create_session_with(ALICE, json!({"name": "w", "template": "fetcher"}))
        .await;
    let fetch = format!(
        "[[tool WebFetch]]{{\"url\": \"https://{ALLOWED_IP}:{}/page.html\", \"prompt\": \"What does it say?\"}}[[/tool]]",
        origin.port
    );
    // Not on the allowlist: the proxy refuses, the page never reaches the model.
    let refused = app.chat_ok(ALICE, "w", &fetch).await;
    let requests = serde_json::to_string(&app.mock.all_requests()).unwrap();
    assert!(!requests.contains("WEBFETCH-MARKER-3141"), "{refused}");
    // Allowed: WebFetch reads the page (no claude.ai preflight behind the
    // proxy) and the model is given its text.
    set_allowlist(&app, "alice", json!([ALLOWED_IP])).await;
    let answer = app.chat_ok(ALICE, "w", &fetch).await;
    let requests = serde_json::to_string(&app.mock.all_requests()).unwrap();
    assert!(requests.contains("WEBFETCH-MARKER-3141"), "{answer}");
}

#[actix_web::test]
async fn the_allowlist_is_set_by_admins_and_checked() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/admin/tenants/alice/egress");
    // A member key may not.
    let res = app
        .client
        .put(&url)
        .header("X-API-Key", ALICE)
        .json(&json!({"allowed_hosts": ["example.com"]}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .get("/api/v1/admin/tenants/alice/egress", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // Bad patterns, too many, unknown fields: 422 naming the problem.
    for (body, says) in [
        (json!({"allowed_hosts": ["*.com"]}), "too wide"),
        (
            json!({"allowed_hosts": ["http://example.com"]}),
            "not a host name",
        ),
        (
            json!({"allowed_hosts": ["a.com", "exa mple.com"]}),
            "exa mple.com",
        ),
        (
            json!({"allowed_hosts": (0..201).map(|i| format!("h{i}.example.com")).collect::<Vec<_>>()}),
            "at most 200",
        ),
        (
            json!({"allowed_hosts": ["a.com"], "extra": 1}),
            "unknown field",
        ),
    ] {
        let res = app
            .client
            .put(&url)
            .header("X-API-Key", ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 422, "validation-error").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    // Unknown tenant: 404, both ways.
    let res = app
        .client
        .put(app.url("/api/v1/admin/tenants/nobody/egress"))
        .header("X-API-Key", ADMIN)
        .json(&json!({"allowed_hosts": []}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .get("/api/v1/admin/tenants/nobody/egress", ADMIN)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    // Stored normalized, deduplicated, sorted; read back; audited.
    let data = set_allowlist(
        &app,
        "bob",
        json!(["Registry.NPMJS.org.", "*.github.com", "registry.npmjs.org"]),
    )
    .await;
    assert_eq!(
        data["allowed_hosts"],
        json!(["*.github.com", "registry.npmjs.org"])
    );
    let read = get_json(&app, "/api/v1/admin/tenants/bob/egress", ADMIN).await;
    assert_eq!(read["data"], data);
    assert_eq!(
        app.query_strings(
            "SELECT pattern AS s FROM tenant_egress_hosts WHERE tenant_id = 'bob' ORDER BY pattern"
        ),
        ["*.github.com", "registry.npmjs.org"]
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM tenant_egress_hosts WHERE tenant_id = 'alice'"),
        0
    );
    assert_eq!(
        app.query_strings("SELECT target AS s FROM audit_log WHERE action = 'tenant.egress.set'"),
        ["bob"]
    );
}

#[actix_web::test]
async fn the_proxy_limits_connections_per_process_and_closes_idle_ones() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("AGENT_EGRESS_PRIVATE_HOSTS", ALLOWED_IP)
            .var("AGENT_EGRESS_MAX_CONNECTIONS", "1")
            .var("AGENT_EGRESS_IDLE_TIMEOUT_SECONDS", "2"),
    )
    .await;
    // An origin that accepts and never says a word.
    let silent = TcpListener::bind(format!("{ALLOWED_IP}:0")).unwrap();
    let silent_addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let origin = Listener::start(&format!("{ALLOWED_IP}:0"), "ORIGIN-MARKER");
    set_allowlist(&app, "alice", json!([ALLOWED_IP])).await;
    app.create_session(ALICE, "l").await;
    let answer = app
        .chat_ok(
            ALICE,
            "l",
            &format!(
                "[[bash]]exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT {silent_addr} HTTP/1.1\\r\\n\\r\\n' >&3; \
                 read -t 5 line <&3; echo first=$line; \
                 echo second=$(curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://{origin}/); \
                 start=$SECONDS; timeout 10 cat <&3 >/dev/null; echo idle=$((SECONDS - start)); \
                 echo third=$(curl -s -m 5 http://{origin}/)[[/bash]]",
                origin = origin.addr
            ),
        )
        .await;
    let out = tool_output(&answer);
    assert_eq!(
        field(&out, "first"),
        Some("HTTP/1.1 200 Connection Established"),
        "{out}"
    );
    // The one connection allowed is taken: the next is refused.
    assert_eq!(field(&out, "second"), Some("503"), "{out}");
    // The silent tunnel is closed after the idle timeout, not the 10 s.
    let idle: u64 = field(&out, "idle").unwrap().parse().unwrap();
    assert!((1..=5).contains(&idle), "{out}");
    // Its slot is free again.
    assert_eq!(field(&out, "third"), Some("ORIGIN-MARKER"), "{out}");
    assert_eq!(origin.requests().len(), 1);
}
