//! The model gateway as the agent meets it: a prompt-injected agent (the
//! real CLI running the mock model's commands) that takes its gateway URL
//! and token from its own environment and tries every other endpoint the
//! real credential would open, and model calls of its own inside and after
//! a turn; and the environment it is started with.

use std::path::Path;

use claude_code_api_core::gateway::pricing::Prices;
use claude_code_api_core::gateway::usage::CallUsage;
use serde_json::json;

use crate::helpers::*;

/// The agent's token, whichever variable its credential kind put it in.
/// The CLI keeps an OAuth token out of its tools' environment, so an agent
/// on the login takes it from the CLI's own (same user, same sandbox).
const TOKEN: &str = r#"tok="${ANTHROPIC_API_KEY:-${ANTHROPIC_AUTH_TOKEN:-$CLAUDE_CODE_OAUTH_TOKEN}}"; [ -n "$tok" ] || tok=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | sed -n 's/^CLAUDE_CODE_OAUTH_TOKEN=//p' | head -1)"#;

/// What the agent tries, with the real credential in mind.
const REFUSED: &[(&str, &str)] = &[
    ("GET", "/v1/models"),
    ("GET", "/v1/files"),
    ("GET", "/v1/messages/batches"),
    ("GET", "/api/oauth/profile"),
    ("POST", "/api/oauth/claude_cli/create_api_key"),
    ("POST", "/v1/./messages"),
    ("POST", "/v1/x/../messages"),
    ("POST", "//v1/messages"),
    ("POST", "/v1/%6Dessages"),
];

/// A model call the mock answers at length (`[[big]]`, with a tool so it
/// is not a side call): its price is far above a turn's own.
const EXPENSIVE_CALL: &str = r#"{"model":"claude-opus-4-1","max_tokens":4096,"tools":[{"name":"t","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"[[big 9000]]"}]}"#;

/// `usage=IN,OUT` lines printed by `call_and_print_usage`, priced.
fn priced_usage(output: &str, prices: &Prices) -> (usize, i64) {
    let calls: Vec<CallUsage> = output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("usage="))
        .map(|u| {
            let (input, output) = u.split_once(',').unwrap();
            CallUsage {
                model: Some("claude-opus-4-1".into()),
                input_tokens: input.trim().parse().unwrap(),
                output_tokens: output.trim().parse().unwrap(),
                ..CallUsage::default()
            }
        })
        .collect();
    (
        calls.len(),
        calls.iter().map(|c| prices.cost_micros(c)).sum(),
    )
}

/// Shell that defines `call`: one `EXPENSIVE_CALL` through the gateway
/// found in the environment, printing `usage=IN,OUT` of its answer.
fn call_and_print_usage() -> String {
    format!(
        "{TOKEN}; printf '%s' '{EXPENSIVE_CALL}' > /tmp/call.json; \
         call() {{ curl -s -X POST \"$ANTHROPIC_BASE_URL/v1/messages\" \
         -H \"Authorization: Bearer $tok\" -H 'content-type: application/json' \
         -d @/tmp/call.json | python3 -c 'import json,sys; u=json.load(sys.stdin)[\"usage\"]; \
         print(\"usage=%d,%d\" % (u[\"input_tokens\"], u[\"output_tokens\"]))'; }}"
    )
}

async fn spent_micros(app: &TestApp, tenant: &str) -> i64 {
    let tenants = get_json(app, "/api/v1/admin/tenants?limit=100", ADMIN).await;
    tenants["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == tenant)
        .map(|t| t["spent_micros"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("no tenant {tenant}: {tenants}"))
}

fn write_login(dir: &Path, access: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let expires = chrono::Utc::now().timestamp_millis() + 86_400_000;
    let file = json!({"claudeAiOauth": {
        "accessToken": access, "refreshToken": "login-refresh", "expiresAt": expires,
        "scopes": ["user:inference", "user:profile"], "subscriptionType": "max",
    }});
    std::fs::write(dir.join(".credentials.json"), file.to_string()).unwrap();
}

/// A sample of the metrics text, by the start of its line.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn refusals(app: &TestApp) -> (f64, f64) {
    let base = app.metrics_base.clone().expect("metrics listener");
    let text = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (
        sample(&text, r#"cca_gateway_refused_total{reason="not_allowed"}"#),
        sample(
            &text,
            r#"cca_gateway_refused_total{reason="not_normalised"}"#,
        ),
    )
}

#[actix_web::test]
async fn the_agent_reaches_only_the_model_calls_of_a_turn_with_a_key_or_the_login() {
    let login = tempfile::tempdir().unwrap();
    write_login(login.path(), "sk-ant-oat01-login-access");
    let with_key = TestApp::spawn_with(Options::default().var("METRICS_ADDR", "127.0.0.1:0")).await;
    let with_login = TestApp::spawn_with(
        Options::default()
            .var("METRICS_ADDR", "127.0.0.1:0")
            .var("ANTHROPIC_API_KEY", "")
            .var("CLAUDE_CONFIG_DIR", login.path().to_string_lossy()),
    )
    .await;
    with_login
        .mock
        .accept_only(Credential::Bearer("sk-ant-oat01-login-access".into()));

    for app in [&with_key, &with_login] {
        let before = refusals(app).await;
        app.create_session(ALICE, "probe").await;
        // Each target with the agent's own token; `--path-as-is` so curl
        // sends the dot segments as written. Then the two allowed calls.
        let mut script = format!("{TOKEN}; ");
        for (i, (method, path)) in REFUSED.iter().enumerate() {
            script.push_str(&format!(
                "echo r{i}=$(curl -s --path-as-is -o /dev/null -w '%{{http_code}}' -X {method} \
                 \"$ANTHROPIC_BASE_URL{path}\" -H \"Authorization: Bearer $tok\" \
                 -H 'content-type: application/json' \
                 -d '{{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'); "
            ));
        }
        // A refusal in the model API's own shape, so the CLI reports it as such.
        script.push_str(
            "curl -s \"$ANTHROPIC_BASE_URL/v1/models\" -H \"Authorization: Bearer $tok\" \
             | python3 -c 'import json,sys; e=json.load(sys.stdin); \
             print(\"shape=%s/%s\" % (e[\"type\"], e[\"error\"][\"type\"]))'; ",
        );
        for (name, path) in [
            ("messages", "/v1/messages?beta=true"),
            ("count", "/v1/messages/count_tokens?beta=true"),
        ] {
            script.push_str(&format!(
                "echo {name}=$(curl -s -o /dev/null -w '%{{http_code}}' -X POST \
                 \"$ANTHROPIC_BASE_URL{path}\" -H \"Authorization: Bearer $tok\" \
                 -H 'content-type: application/json' \
                 -d '{{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'); "
            ));
        }
        let answer = app
            .chat_ok(ALICE, "probe", &format!("[[bash]]{script}[[/bash]]"))
            .await;
        let out = tool_output(&answer);
        for (i, (method, path)) in REFUSED.iter().enumerate() {
            assert!(
                out.lines().any(|l| l.trim() == format!("r{i}=403")),
                "{method} {path} was not refused: {out}"
            );
        }
        assert!(out.contains("shape=error/permission_error"), "{out}");
        // The CLI's own calls still pass, so the refusals are the allowlist's.
        assert!(out.contains("messages=200"), "{out}");
        assert!(out.contains("count=200"), "{out}");

        // Upstream saw only the allowed calls: the CLI's turn and the two.
        let targets = app.mock.targets();
        assert!(targets.len() >= 4, "{targets:?}");
        for t in &targets {
            assert_eq!(t.method, "POST", "{targets:?}");
            assert!(
                [
                    "/v1/messages?beta=true",
                    "/v1/messages/count_tokens?beta=true"
                ]
                .contains(&t.target.as_str()),
                "the model saw {t:?}"
            );
        }
        // Counted by reason (the registry is the process's: at least these).
        let after = refusals(app).await;
        assert!(after.0 - before.0 >= 5.0, "{before:?} → {after:?}");
        assert!(after.1 - before.1 >= 4.0, "{before:?} → {after:?}");
    }
}

#[actix_web::test]
async fn the_agents_own_model_calls_are_charged_in_a_turn_and_after_it() {
    let app = TestApp::spawn().await;
    let prices = Prices::load(None).unwrap();
    app.create_session(ALICE, "m").await;
    let spent_before = spent_micros(&app, "alice").await;

    // Five calls in the turn; three more by a background process that
    // starts them once the turn is over.
    let prompt = format!(
        "[[bash]]{calls}; for i in 1 2 3 4 5; do call; done; \
         (sleep 6; for i in 1 2 3; do call; done; echo bg-done) > bg.log 2>&1 < /dev/null & \
         echo started[[/bash]]",
        calls = call_and_print_usage(),
    );
    let answer = app.chat_ok(ALICE, "m", &prompt).await;
    let out = tool_output(&answer);
    let (n, in_turn_price) = priced_usage(&out, &prices);
    assert_eq!(n, 5, "{out}");
    assert!(out.contains("started"), "{out}");

    // The turn is charged at least what the gateway metered for it: its
    // own calls and the agent's five.
    let turn_cost = answer["cost_micros"].as_i64().unwrap();
    let spent_after_turn = spent_micros(&app, "alice").await;
    assert_eq!(spent_after_turn - spent_before, turn_cost);
    assert!(turn_cost >= in_turn_price, "{turn_cost} < {in_turn_price}");
    let session_calls = "FROM model_calls WHERE tenant_id = 'alice' AND status = 200";
    let metered: i64 = {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            model: Option<String>,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            input_tokens: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            output_tokens: i64,
        }
        let rows: Vec<Row> = app.db.load(&format!(
            "SELECT model, input_tokens, output_tokens {session_calls}"
        ));
        rows.into_iter()
            .map(|r| {
                prices.cost_micros(&CallUsage {
                    model: r.model,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    ..CallUsage::default()
                })
            })
            .sum()
    };
    assert!(metered >= in_turn_price, "{metered} < {in_turn_price}");
    assert!(turn_cost >= metered, "{turn_cost} < {metered}");
    assert_eq!(
        app.query_i64(&format!(
            "SELECT CAST(COALESCE(SUM(charged_micros), 0) AS BIGINT) AS n {session_calls}"
        )),
        0,
        "calls of the turn are the turn's to pay"
    );

    // After the turn: the background calls are charged to the tenant.
    let log = app.workspace("alice", "m").join("bg.log");
    assert!(
        eventually(60, || async {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("bg-done"))
        })
        .await,
        "{:?}",
        std::fs::read_to_string(&log)
    );
    let (n, after_turn_price) = priced_usage(&std::fs::read_to_string(&log).unwrap(), &prices);
    assert_eq!(n, 3);
    assert!(after_turn_price > 0);
    assert!(
        eventually(10, || async {
            spent_micros(&app, "alice").await - spent_after_turn == after_turn_price
        })
        .await,
        "spent {} after the turn, the background calls cost {after_turn_price}",
        spent_micros(&app, "alice").await - spent_after_turn
    );
    assert_eq!(
        app.query_i64(&format!(
            "SELECT CAST(COALESCE(SUM(charged_micros), 0) AS BIGINT) AS n {session_calls}"
        )),
        after_turn_price
    );
    assert_eq!(
        app.query_i64("SELECT spent_micros AS n FROM tenants WHERE id = 'alice'"),
        spent_before + turn_cost + after_turn_price
    );
    // `/usage` shows them, in the spend and as charged outside turns.
    let usage = get_json(&app, "/api/v1/usage", ALICE).await;
    assert_eq!(
        usage["data"]["cost_micros"].as_i64().unwrap(),
        spent_before + turn_cost + after_turn_price,
        "{usage}"
    );
    assert_eq!(
        usage["data"]["model_calls"]["charged_outside_turns_micros"], after_turn_price,
        "{usage}"
    );
    // And the session's totals.
    let session = get_json(&app, "/api/v1/sessions/m", ALICE).await;
    assert_eq!(
        session["data"]["total_cost_micros"].as_i64(),
        Some(turn_cost + after_turn_price),
        "{session}"
    );
    // Bob paid nothing of it.
    assert_eq!(spent_micros(&app, "bob").await, 0);
}

#[actix_web::test]
async fn credentials_passed_by_a_prefix_never_reach_the_agent() {
    let app = TestApp::spawn_with(
        Options::default()
            .var("ANTHROPIC_FOUNDRY_API_KEY", "MARKER-SRV-foundry-key")
            .var("CLAUDE_CODE_SOMETHING", "MARKER-SRV-claude-code")
            .var("DISABLE_SOMETHING", "MARKER-SRV-disable")
            .var("LC_SECRET", "MARKER-SRV-locale"),
    )
    .await;
    app.create_session(ALICE, "env").await;
    // The marker in two quoted halves: the prompt itself does not hold it.
    let answer = app
        .chat_ok(
            ALICE,
            "env",
            "[[bash]]echo count=$(env | grep -c 'MARKER''-SRV'); \
             echo names=$(env | cut -d= -f1 | grep -E '^(ANTHROPIC|CLAUDE_CODE|DISABLE|LC)_' | sort | tr '\\n' ' ')[[/bash]]",
        )
        .await;
    let out = tool_output(&answer);
    assert!(out.contains("count=0"), "{out}");
    assert!(!out.contains("FOUNDRY"), "{out}");
    assert!(!out.contains("CLAUDE_CODE_SOMETHING"), "{out}");
    assert!(!out.contains("DISABLE_SOMETHING"), "{out}");
    assert!(!out.contains("LC_SECRET"), "{out}");
    // What the server gives the CLI is there.
    assert!(out.contains("ANTHROPIC_BASE_URL"), "{out}");
}
