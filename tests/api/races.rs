//! The agent races the server: while its own loop swaps a folder of its
//! workspace with a link to a host folder (atomic `renameat2` exchanges),
//! the server's answers and its state must agree. A refused upload stores
//! nothing and a stored one is answered 2xx; a session delete finishes and
//! leaves no folder nothing will clean; an archive is whole or a problem
//! before its first byte. Nothing of the host folder is read or written.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::files::{file_part, upload};
use crate::helpers::*;

/// How long the agent's loop swaps.
const RACE_SECONDS: u64 = 8;

/// A host folder the agent's link points at, with a marker file: it must
/// end exactly as it began.
struct HostFolder {
    path: PathBuf,
}

const MARKER: &str = "HOST-FOLDER-MARKER-7d1e";

impl HostFolder {
    fn plant(app: &TestApp) -> HostFolder {
        let path = app.root.path().join("host-folder");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("marker.txt"), MARKER).unwrap();
        HostFolder { path }
    }

    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["marker.txt"],
            "nothing was added to the host folder"
        );
        assert_eq!(
            std::fs::read_to_string(self.path.join("marker.txt")).unwrap(),
            MARKER
        );
    }
}

/// Starts the agent's own loop in session `session`: folder `d` (with
/// `depth` nested folders and files in it) and a link `l` to the host
/// folder trade places as fast as they can for `RACE_SECONDS`; with
/// `writer`, it also keeps adding files. The loop writes its swap count to
/// `swaps.txt` when it ends.
async fn start_race(app: &TestApp, session: &str, host: &HostFolder, writer: bool) {
    let write = if writer {
        "\n    open('d/w%d' % (n % 50), 'w').write('x')"
    } else {
        ""
    };
    let script = format!(
        "import ctypes, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         end = time.time() + {RACE_SECONDS}\n\
         n = 0\n\
         while time.time() < end:\n    \
         libc.renameat2(-100, b'd', -100, b'l', 2)\n    \
         n += 1{write}\n\
         open('swaps.txt', 'w').write(str(n))\n"
    );
    std::fs::write(app.workspace("alice", session).join("race.py"), script).unwrap();
    let answer = app
        .chat_ok(
            ALICE,
            session,
            &format!(
                "[[bash]]mkdir -p d/a/b/c && echo 1 > d/a/one && echo 2 > d/a/b/c/two && \
                 ln -sfn {host} l && \
                 (setsid nohup python3 race.py > /dev/null 2>&1 &) ; echo racing[[/bash]]",
                host = host.path.display()
            ),
        )
        .await;
    assert!(tool_output(&answer).contains("racing"), "{answer}");
}

/// Waits for the agent's loop to end; the number of swaps it made.
async fn race_finished(app: &TestApp, session: &str) -> u64 {
    let count = app.workspace("alice", session).join("swaps.txt");
    let done = eventually(RACE_SECONDS + 20, || async { count.exists() }).await;
    assert!(done, "the agent's loop ended");
    std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Regular files named `prefix*` anywhere in `dir`, never through a link.
fn files_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            found.extend(files_named(&path, prefix));
        } else if meta.is_file() && entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path);
        }
    }
    found
}

#[actix_web::test]
async fn uploads_raced_by_the_agent_are_stored_exactly_when_answered_2xx() {
    let app = TestApp::spawn().await;
    let host = HostFolder::plant(&app);
    app.create_session(ALICE, "race").await;
    start_race(&app, "race", &host, false).await;

    let (mut stored, mut refused) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(RACE_SECONDS - 1);
    let mut i = 0;
    while i < 100 && Instant::now() < deadline {
        // Into the swapped folder, and a new folder beneath it.
        let query = if i % 2 == 0 { "?path=d" } else { "?path=d/new" };
        let name = format!("up{i}.txt");
        let res = upload(&app, ALICE, "race", query, &[file_part(&name, b"uploaded")]).await;
        match res.status().as_u16() {
            201 => stored += 1,
            404 | 409 => {
                assert_eq!(
                    res.headers()["content-type"],
                    "application/problem+json",
                    "a refusal is a problem document"
                );
                refused += 1;
            }
            other => panic!("upload {i}: {other} {}", res.text().await.unwrap()),
        }
        i += 1;
    }
    let swaps = race_finished(&app, "race").await;
    eprintln!("uploads under the race: {stored} stored, {refused} refused, {swaps} swaps");
    assert!(swaps > 100, "the agent raced ({swaps} swaps)");
    let on_disk = files_named(&app.workspace("alice", "race"), "up").len();
    assert_eq!(
        on_disk, stored,
        "{stored} answered 201 and {refused} refused; {on_disk} stored"
    );
    assert!(
        files_named(&app.workspace("alice", "race"), ".cca-upload-").is_empty(),
        "no temporary file is left"
    );
    host.assert_untouched();
}

#[actix_web::test]
async fn a_session_deleted_while_its_agent_races_is_gone_whole() {
    let app = TestApp::spawn().await;
    let host = HostFolder::plant(&app);
    app.create_session(ALICE, "doomed").await;
    start_race(&app, "doomed", &host, true).await;
    let workspace = app.workspace("alice", "doomed");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let res = app
        .delete("/api/v1/sessions/doomed", ALICE)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert!(!workspace.exists(), "the workspace is removed whole");
    let rows = app.query_i64(
        "SELECT COUNT(*) AS n FROM sessions WHERE tenant_id = 'alice' AND name = 'doomed'",
    );
    assert_eq!(rows, 0);
    assert_eq!(app.health().await["leftover_folders"], 0);
    // The agent's loop died with its session: nothing comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!workspace.exists(), "no process of the agent wrote on");
    host.assert_untouched();
}

#[actix_web::test]
async fn a_folder_that_cannot_be_removed_is_swept_later_and_counted_meanwhile() {
    if !server_is_root() {
        eprintln!("skipped: a mount point in the workspace needs root");
        return;
    }
    let app = TestApp::spawn_with(Options::default().var("LEFTOVER_SWEEP_SECONDS", "1")).await;
    app.create_session(ALICE, "pinned").await;
    let workspace = app.workspace("alice", "pinned");
    // A folder mounted into the workspace (by the operator; the agent cannot
    // mount): a removal never crosses into it, so the delete leaves it.
    let source = app.root.path().join("mounted-source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("kept.txt"), "kept").unwrap();
    let point = workspace.join("pin");
    std::fs::create_dir_all(&point).unwrap();
    std::fs::write(workspace.join("other.txt"), "removed").unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["--bind"])
        .arg(&source)
        .arg(&point)
        .status()
        .unwrap();
    assert!(mounted.success());

    let res = app
        .delete("/api/v1/sessions/pinned", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "the delete finishes");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM sessions WHERE name = 'pinned'"),
        0
    );
    assert!(
        !workspace.join("other.txt").exists(),
        "what could go is gone"
    );
    assert_eq!(
        app.query_strings("SELECT path AS s FROM leftover_folders"),
        [workspace.to_string_lossy().into_owned()]
    );
    assert_eq!(app.health().await["leftover_folders"], 1);
    assert_eq!(
        std::fs::read_to_string(source.join("kept.txt")).unwrap(),
        "kept",
        "nothing beyond the mount point was removed"
    );

    let unmounted = std::process::Command::new("umount")
        .arg(&point)
        .status()
        .unwrap();
    assert!(unmounted.success());
    let swept = eventually(15, || async { app.health().await["leftover_folders"] == 0 }).await;
    assert!(swept, "the sweeper removed it");
    assert!(!workspace.exists());
    assert_eq!(
        app.query_i64("SELECT COUNT(*) AS n FROM leftover_folders"),
        0
    );
    assert!(source.join("kept.txt").exists());
}

#[actix_web::test]
async fn archives_raced_by_the_agent_are_whole() {
    let app = TestApp::spawn().await;
    let host = HostFolder::plant(&app);
    app.create_session(ALICE, "packed").await;
    start_race(&app, "packed", &host, false).await;

    let deadline = Instant::now() + Duration::from_secs(RACE_SECONDS - 1);
    let mut whole = 0;
    while Instant::now() < deadline {
        let res = app
            .get("/api/v1/sessions/packed/archive", ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.bytes().await.expect("the archive body ends cleanly");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut names = Vec::new();
        for entry in archive.entries().expect("a tar") {
            let mut entry = entry.expect("a whole entry");
            let mut content = String::new();
            let _ = entry.read_to_string(&mut content);
            assert!(
                !content.contains(MARKER),
                "the host folder is never archived"
            );
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        assert!(names.iter().any(|n| n == "packed/race.py"), "{names:?}");
        whole += 1;
    }
    race_finished(&app, "packed").await;
    assert!(whole > 3, "{whole} archives");
    host.assert_untouched();
}
