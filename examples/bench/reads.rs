//! Reads at memory speed: requests per second and latency of `/health`, an
//! authenticated list, an authenticated get and a job status poll, under a
//! closed loop of keep-alive connections; the same list with the identity
//! cache off (`AUTH_CACHE_SECONDS=0`) beside it; and where a warm turn's
//! time goes on the server, step by step (`cca_turn_stage_seconds`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use claude_code_api_testkit::mock_model::MockModel;
use serde_json::{json, Value};

use super::{BenchServer, KEY};

/// Keep-alive connections of the load generator.
const CONNECTIONS: usize = 32;

/// The rows of the read benchmark, printed as they are measured.
pub async fn run(mock: &MockModel, root: &Path, seconds: u64, turns: usize) {
    // A million requests a second: the rate limit never answers instead.
    let unlimited = [
        ("RATE_LIMIT_REQUESTS", "1000000"),
        ("RATE_LIMIT_WINDOW", "1"),
    ];
    let server = BenchServer::start_with(mock, root, "off", &unlimited).await;
    let uncached = BenchServer::start_with(
        mock,
        root,
        "off",
        &[unlimited[0], unlimited[1], ("AUTH_CACHE_SECONDS", "0")],
    )
    .await;
    server.create("reads").await;
    uncached.create("reads").await;
    server.chat("reads", 0).await;
    let job = server.job("reads").await;

    let run = Duration::from_secs(seconds);
    println!(
        "{:<46} {:>10} {:>9} {:>9} {:>7}",
        format!("reads, {CONNECTIONS} connections"),
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    let rows: [(&str, &BenchServer, String, Option<&str>); 5] = [
        ("GET /health", &server, "/health".into(), None),
        (
            "GET /api/v1/sessions (authenticated list)",
            &server,
            "/api/v1/sessions".into(),
            Some(KEY),
        ),
        (
            "GET /api/v1/sessions/{name} (authenticated get)",
            &server,
            "/api/v1/sessions/reads".into(),
            Some(KEY),
        ),
        (
            "GET …/jobs/{id} (job status poll)",
            &server,
            format!("/api/v1/sessions/reads/jobs/{job}"),
            Some(KEY),
        ),
        (
            "GET /api/v1/sessions, identity cache off",
            &uncached,
            "/api/v1/sessions".into(),
            Some(KEY),
        ),
    ];
    for (label, target, path, key) in rows {
        let load = super::load::get(target.addr(), &path, key, CONNECTIONS, run).await;
        println!(
            "{label:<46} {:>10.0} {:>9.2} {:>9.2} {:>7}",
            load.per_second, load.p50_ms, load.p99_ms, load.errors
        );
    }
    println!();

    // Where a warm turn's time goes (the metrics' sums over these turns).
    let before = stage_sums();
    for i in 1..=turns {
        server.chat("reads", i).await;
    }
    let after = stage_sums();
    println!("a warm turn on the server, by step (mean of {turns} turns):");
    for (stage, (sum, count)) in &after {
        let (sum0, count0) = before.get(stage).copied().unwrap_or((0.0, 0.0));
        let n = count - count0;
        if n > 0.0 {
            println!("  {stage:<14} {:>8.3} ms", (sum - sum0) / n * 1000.0);
        }
    }
    println!(
        "  (permit: queued to its tenant's running-turn permit; cli_write: to its message written \
         to the CLI, after the disk and budget checks; first_output: to the CLI's first line; \
         answer: to its result; store: to its record stored)"
    );
    println!();
}

/// `(sum seconds, count)` of each stage histogram and of authentication.
pub fn stage_sums() -> std::collections::BTreeMap<String, (f64, f64)> {
    let mut out = histogram_sums("cca_turn_stage_seconds", "stage");
    out.extend(histogram_sums("cca_auth_duration_seconds", ""));
    out
}

/// `(sum seconds, count)` of each series of histogram `name`, by the value
/// of its label `label` (`""`: the one series, as `auth`).
pub fn histogram_sums(name: &str, label: &str) -> std::collections::BTreeMap<String, (f64, f64)> {
    let text = claude_code_api_core::metrics::encode()
        .and_then(Result::ok)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut out: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = value.parse::<f64>().unwrap_or(0.0);
        let (rest, is_sum) = if let Some(rest) = series.strip_prefix(&format!("{name}_sum")) {
            (rest, true)
        } else if let Some(rest) = series.strip_prefix(&format!("{name}_count")) {
            (rest, false)
        } else {
            continue;
        };
        let key = if label.is_empty() {
            "auth".to_owned()
        } else {
            rest.trim_start_matches(&format!("{{{label}=\""))
                .trim_end_matches("\"}")
                .to_owned()
        };
        let entry = out.entry(key).or_default();
        if is_sum {
            entry.0 = value;
        } else {
            entry.1 = value;
        }
    }
    out
}

/// Prints the mean of each step of a CLI process's start so far.
pub fn print_process_starts() {
    println!("a CLI process's start, by step (mean over every start of this run):");
    for (step, (sum, count)) in histogram_sums("cca_process_start_seconds", "step") {
        if count > 0.0 {
            println!(
                "  {step:<12} {:>8.1} ms  ({count} starts)",
                sum / count * 1000.0
            );
        }
    }
    println!(
        "  (prepare: the agent user, the transcript checked or rebuilt, the disk quota; confine: \
         folders opened and handed over, the cgroup; spawn: bubblewrap started; initialize: to \
         the CLI's answer; prime: the warm-up's throwaway exchange)"
    );
}

impl BenchServer {
    /// The server's listening address.
    fn addr(&self) -> SocketAddr {
        let host_port = self
            .base
            .trim_start_matches("http://")
            .trim_end_matches("/api/v1");
        host_port.parse().unwrap()
    }

    /// Runs one job on `session` to its end; its id.
    async fn job(&self, session: &str) -> String {
        let res = self
            .client
            .post(format!("{}/sessions/{session}/jobs", self.base))
            .header("X-API-Key", KEY)
            .json(&json!({"message": "a job"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "job");
        let created: Value = res.json().await.unwrap();
        let id = created["data"]["id"].as_str().expect("a job id").to_owned();
        for _ in 0..600 {
            let job: Value = self
                .client
                .get(format!("{}/sessions/{session}/jobs/{id}", self.base))
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let status = job["data"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !matches!(status.as_str(), "queued" | "running" | "") {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the job did not end");
    }
}
