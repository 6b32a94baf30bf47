//! The turn that resumes an evicted session: its process was retired by the
//! idle timeout, so the turn starts a new one on the stored conversation
//! (`--resume`). Four servers taken in turn: the sandbox as it ships
//! (bubblewrap, its network namespace and seccomp filter), without the
//! network namespace (`AGENT_NETWORK=host`), without either (and
//! `AGENT_SECCOMP=false`), and no sandbox. Then where each one's starts
//! spent their time, step by step (`cca_process_start_seconds`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use claude_code_api_testkit::mock_model::MockModel;

use super::{stats, BenchServer};

/// Each variant: its label, a short one for the steps' table, its sandbox
/// mode and its settings.
type Variant = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const VARIANTS: [Variant; 4] = [
    ("sandbox on", "on", "bwrap", &[]),
    (
        "sandbox on, host network",
        "host net",
        "bwrap",
        &[("AGENT_NETWORK", "host")],
    ),
    (
        "sandbox on, host network, no seccomp",
        "bare",
        "bwrap",
        &[("AGENT_NETWORK", "host"), ("AGENT_SECCOMP", "false")],
    ),
    ("sandbox off", "off", "off", &[]),
];

pub async fn run(mock: &MockModel, root: &Path, runs: usize) {
    let idle = [
        ("SESSION_IDLE_TIMEOUT_SECONDS", "1"),
        ("WARM_ON_CREATE", "false"),
    ];
    let mut servers = Vec::new();
    for (_, _, sandbox, extra) in VARIANTS {
        let settings: Vec<(&str, &str)> = idle.iter().chain(extra.iter()).copied().collect();
        let server = BenchServer::start_with(mock, root, sandbox, &settings).await;
        server.create("evicted").await;
        server.chat("evicted", 0).await;
        servers.push(server);
    }
    let mut resumed: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
    let mut steps: Vec<BTreeMap<String, (f64, f64)>> = vec![BTreeMap::new(); VARIANTS.len()];
    for i in 1..=runs {
        for (n, server) in servers.iter().enumerate() {
            // Retired by the idle timeout, its actor stopped.
            for _ in 0..100 {
                if server.sessions().await["live_processes"] == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The servers share this process's metrics: one resume at a time,
            // so what grew between is this one's.
            let before = super::reads::histogram_sums("cca_process_start_seconds", "step");
            resumed[n].push(server.chat("evicted", i).await);
            let after = super::reads::histogram_sums("cca_process_start_seconds", "step");
            super::first::add_difference(&mut steps[n], &before, &after);
        }
    }
    println!(
        "{:<44} {:>10} {:>10}",
        "resumed after eviction", "median ms", "p90 ms"
    );
    for ((label, _, _, _), times) in VARIANTS.iter().zip(resumed) {
        let (median, p90) = stats(times);
        println!("  {label:<42} {median:>10.1} {p90:>10.1}");
    }
    println!("  the resumes' starts, by step (mean ms):");
    print!("    {:<12}", "");
    for (_, short, _, _) in VARIANTS {
        print!(" {short:>12}");
    }
    println!();
    let names: std::collections::BTreeSet<&String> = steps.iter().flat_map(|s| s.keys()).collect();
    for step in names {
        print!("    {step:<12}");
        for by_step in &steps {
            let (sum, count) = by_step.get(step).copied().unwrap_or_default();
            print!(" {:>12.1}", super::first::mean_ms(sum, count));
        }
        println!();
    }
    println!();
}
