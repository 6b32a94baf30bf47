//! A large repository: what the first session from it costs (the server's
//! mirror cloned) against each later one (a fetch and a worktree borrowing
//! the mirror's objects), in time and in disk, next to a plain `git clone`.
//! `cargo run --release --example bench -- repo [MB]` (default 500).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use claude_code_api_testkit::mock_model::MockModel;
use serde_json::json;

use super::{BenchServer, KEY};

/// A bare repository of about `mb` MiB of incompressible files, one commit.
fn big_repo(root: &Path, mb: usize) -> std::path::PathBuf {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.email=b@b", "-c", "user.name=b"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&work, &["init", "-q", "-b", "main"]);
    // xorshift: incompressible, the same every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let files = mb.max(1);
    for i in 0..files {
        let mut data = vec![0u8; 1024 * 1024];
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let dir = work.join(format!("d{}", i % 16));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "big"]);
    let projects = root.join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let bare = projects.join("big.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    std::fs::remove_dir_all(&work).unwrap();
    bare
}

/// Bytes under `path` (`du -sb`).
fn disk(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub async fn run(mock: &MockModel, root: &Path, mb: usize) {
    let made = Instant::now();
    let bare = big_repo(root, mb);
    println!(
        "a repository of {:.0} MiB made in {:.1} s",
        disk(&bare) as f64 / 1048576.0,
        made.elapsed().as_secs_f64()
    );
    let plain = Instant::now();
    let copy = root.join("plain-clone");
    assert!(Command::new("git")
        .args(["clone", "-q", "--no-local"])
        .arg(&bare)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    let plain_ms = plain.elapsed().as_secs_f64() * 1000.0;
    let plain_disk = disk(&copy);
    let allowed = root.join("projects").to_string_lossy().into_owned();
    let server = BenchServer::start_with(
        mock,
        root,
        "bwrap",
        &[("GIT_ALLOWED_PATHS", &allowed), ("WARM_ON_CREATE", "false")],
    )
    .await;
    let registered = Instant::now();
    let res = server
        .client
        .post(format!("{}/repos", server.base))
        .header("X-API-Key", KEY)
        .json(&json!({"name": "big", "url": bare}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        201,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let mut times = Vec::new();
    let mut workspaces = Vec::new();
    for i in 0..4 {
        let started = Instant::now();
        let res = server
            .client
            .post(format!("{}/sessions", server.base))
            .header("X-API-Key", KEY)
            .json(&json!({"name": format!("s{i}"), "repo": {"name": "big"}}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(status, 201, "{body}");
        // The first includes registering (the mirror is cloned from there on).
        let since = if i == 0 { registered } else { started };
        times.push(since.elapsed().as_secs_f64() * 1000.0);
        workspaces.push(std::path::PathBuf::from(
            body["data"]["workspace"].as_str().unwrap_or_default(),
        ));
    }
    // The mirror, as the worktree's borrowed objects name it.
    let alternates =
        std::fs::read_to_string(workspaces[1].join(".git/objects/info/alternates")).unwrap();
    let mirror = disk(Path::new(alternates.trim()).parent().unwrap());
    let worktree = disk(&workspaces[1]);
    let worktree_git = disk(&workspaces[1].join(".git"));
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "{:<56} {:>10} {:>10}",
        "session from a repository", "ms", "MiB"
    );
    println!(
        "{:<56} {:>10.0} {:>10.1}",
        "  plain `git clone --no-local` (baseline)",
        plain_ms,
        mib(plain_disk)
    );
    println!(
        "{:<56} {:>10.0} {:>10.1}",
        "  register + first session (mirror cloned); mirror's disk",
        times[0],
        mib(mirror)
    );
    for (i, t) in times.iter().enumerate().skip(1) {
        println!(
            "{:<56} {:>10.0}",
            format!("  session {} (fetch + worktree)", i + 1),
            t
        );
    }
    println!(
        "{:<56} {:>10} {:>10.1}",
        "  one worktree, files checked out",
        "",
        mib(worktree)
    );
    println!(
        "{:<56} {:>10} {:>10.1}",
        "    of which its .git",
        "",
        mib(worktree_git)
    );
    println!(
        "  a later session takes {:.2}x the first's time; its .git is {:.3}x a plain clone's disk",
        times[1..].iter().sum::<f64>() / (times.len() - 1) as f64 / times[0],
        mib(worktree_git) / mib(plain_disk).max(0.001)
    );
    println!();
}
