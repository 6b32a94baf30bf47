//! `bench first [RUNS]`: the first turn one second after a session is
//! created (warm-up on) against a warm turn of another session of the same
//! server, taken in turn, with the mean of each of the turn's steps for
//! each kind, so the difference shows where it is spent.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use claude_code_api_testkit::mock_model::MockModel;

use crate::{reads, stats, BenchServer};

pub async fn run(mock: &MockModel, root: &Path, runs: usize) {
    let server = BenchServer::start_with(mock, root, "off", &[("WARM_ON_CREATE", "true")]).await;
    server.create("warm").await;
    server.chat("warm", 0).await;
    let (mut first, mut warm) = (Vec::new(), Vec::new());
    let (mut first_steps, mut warm_steps) = (BTreeMap::new(), BTreeMap::new());
    for i in 0..runs {
        let name = format!("typed-{i}");
        server.create(&name).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = reads::stage_sums();
        first.push(server.chat(&name, 0).await);
        let between = reads::stage_sums();
        warm.push(server.chat("warm", i + 1).await);
        add_difference(&mut first_steps, &before, &between);
        add_difference(&mut warm_steps, &between, &reads::stage_sums());
        server.delete(&name).await;
    }
    let (f_med, f_p90) = stats(first);
    let (w_med, w_p90) = stats(warm);
    println!("{:<44} {:>10} {:>10}", "variant", "median ms", "p90 ms");
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "first turn 1 s after create (warm-up on)", f_med, f_p90
    );
    println!(
        "{:<44} {:>10.1} {:>10.1}",
        "warm turn, same server, taken in turn", w_med, w_p90
    );
    println!(
        "first turn 1 s after create / warm turn: {:.2}x median (goal ≤ 1.5x)\n",
        f_med / w_med
    );
    println!("{:<14} {:>12} {:>12}", "step (mean)", "first ms", "warm ms");
    for (step, (sum, count)) in &first_steps {
        let (w_sum, w_count) = warm_steps.get(step).copied().unwrap_or_default();
        println!(
            "{step:<14} {:>12.2} {:>12.2}",
            mean_ms(*sum, *count),
            mean_ms(w_sum, w_count)
        );
    }
    println!();
    reads::print_process_starts();
}

/// Adds what each step's `(sum, count)` grew by from `from` to `to`.
pub(super) fn add_difference(
    into: &mut BTreeMap<String, (f64, f64)>,
    from: &BTreeMap<String, (f64, f64)>,
    to: &BTreeMap<String, (f64, f64)>,
) {
    for (step, (sum, count)) in to {
        let (s0, c0) = from.get(step).copied().unwrap_or_default();
        let entry = into.entry(step.clone()).or_insert((0.0, 0.0));
        entry.0 += sum - s0;
        entry.1 += count - c0;
    }
}

pub(super) fn mean_ms(sum: f64, count: f64) -> f64 {
    if count > 0.0 {
        sum / count * 1000.0
    } else {
        0.0
    }
}
