//! The turn that resumes an evicted session: its process was retired by the
//! idle timeout, so the turn starts a new one on the stored conversation
//! (`--resume`), with the sandbox on and off, taken in turn. Then where that
//! start's time went, step by step (`cca_process_start_seconds`).

use std::path::Path;
use std::time::Duration;

use claude_code_api_testkit::mock_model::MockModel;

use super::{stats, BenchServer};

pub async fn run(mock: &MockModel, root: &Path, runs: usize) {
    let idle = [
        ("SESSION_IDLE_TIMEOUT_SECONDS", "1"),
        ("WARM_ON_CREATE", "false"),
    ];
    let boxed = BenchServer::start_with(mock, root, "bwrap", &idle).await;
    let unboxed = BenchServer::start_with(mock, root, "off", &idle).await;
    let before = super::reads::histogram_sums("cca_process_start_seconds", "step");
    let mut resumed = [Vec::new(), Vec::new()];
    for server in [&boxed, &unboxed] {
        server.create("evicted").await;
        server.chat("evicted", 0).await;
    }
    for i in 1..=runs {
        for (n, server) in [&boxed, &unboxed].into_iter().enumerate() {
            // Retired by the idle timeout, its actor stopped.
            for _ in 0..100 {
                if server.sessions().await["live_processes"] == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            resumed[n].push(server.chat("evicted", i).await);
        }
    }
    let after = super::reads::histogram_sums("cca_process_start_seconds", "step");
    let [boxed_runs, unboxed_runs] = resumed;
    let (b_med, b_p90) = stats(boxed_runs);
    let (u_med, u_p90) = stats(unboxed_runs);
    println!(
        "{:<44} {:>10} {:>10}",
        "resumed after eviction", "median ms", "p90 ms"
    );
    println!("{:<44} {:>10.1} {:>10.1}", "  sandbox on", b_med, b_p90);
    println!("{:<44} {:>10.1} {:>10.1}", "  sandbox off", u_med, u_p90);
    println!("  the resumes' starts, by step (mean over both servers):");
    for (step, (sum, count)) in &after {
        let (sum0, count0) = before.get(step).copied().unwrap_or((0.0, 0.0));
        let n = count - count0;
        if n > 0.0 {
            println!("    {step:<12} {:>8.1} ms", (sum - sum0) / n * 1000.0);
        }
    }
    println!();
}
