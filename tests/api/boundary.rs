//! The agent boundary from the side: the server, as root, never acts on a
//! path the agent controls. Each attack runs from inside the agent (its
//! Bash tool, through the real CLI), or as the client that helps it, and
//! a root-owned file with known contents, mode and owner must stay as it
//! was, with no marker of the server's secrets anywhere the agent can see.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::helpers::*;

/// A file of the host's (the server user's, 0644) that no agent action may change.
struct Victim {
    path: PathBuf,
    contents: &'static str,
}

impl Victim {
    fn plant(app: &TestApp, name: &str) -> Victim {
        Victim::plant_with(app, name, "HOST-FILE-ORIGINAL-CONTENTS\n")
    }

    fn plant_with(app: &TestApp, name: &str, contents: &'static str) -> Victim {
        let dir = app.root.path().join("host");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Victim { path, contents }
    }

    fn assert_untouched(&self) {
        let meta = std::fs::symlink_metadata(&self.path).unwrap();
        assert!(meta.is_file(), "{} is still a file", self.path.display());
        assert_eq!(meta.uid(), server_uid(), "still the server's");
        assert_eq!(meta.mode() & 0o7777, 0o644, "mode unchanged");
        assert_eq!(
            std::fs::read_to_string(&self.path).unwrap(),
            self.contents,
            "contents unchanged"
        );
    }
}

fn session_row(app: &TestApp, tenant: &str, name: &str, column: &str) -> String {
    app.query_strings(&format!(
        "SELECT {column} AS s FROM sessions WHERE name = '{name}' AND tenant_id = '{tenant}'"
    ))
    .remove(0)
}

fn transcript_of(app: &TestApp, tenant: &str, name: &str) -> PathBuf {
    let cli_id = session_row(app, tenant, name, "cli_session_id");
    let workspace = session_row(app, tenant, name, "workspace");
    claude_code_api_core::cli::command::transcript_path(
        &app.root.path().join("data/cli-config").join(tenant),
        Path::new(&workspace),
        &cli_id,
    )
}

/// `transcript` as the agent names it: relative to its CLI state folder
/// (its `$HOME`), `projects/<folder>/<id>.jsonl`.
fn in_cli_state(transcript: &Path) -> String {
    let folder = transcript.parent().and_then(Path::file_name).unwrap();
    let file = transcript.file_name().unwrap();
    format!(
        "projects/{}/{}",
        folder.to_string_lossy(),
        file.to_string_lossy()
    )
}

/// Everything the agent could read back: its CLI state and workspace.
fn grep_tree(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(grep_tree(&path, marker));
        } else if meta.is_file()
            && std::fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(marker))
        {
            found.push(path);
        }
    }
    found
}

#[actix_web::test]
async fn a_planted_transcript_link_is_replaced_never_written_through() {
    let app =
        // Long enough that the process is not retired between two of the
        // test's own requests on a slow machine (a resumed process may write
        // its transcript elsewhere), short enough to wait for.
        TestApp::spawn_with(Options::default().var("SESSION_IDLE_TIMEOUT_SECONDS", "5")).await;
    let partial_victim = Victim::plant(&app, "partial-target");
    let final_victim = Victim::plant(&app, "final-target");
    app.create_session(ALICE, "t").await;
    app.chat_ok(ALICE, "t", "remember 42").await;
    let transcript = transcript_of(&app, "alice", "t");

    // The agent deletes its transcript and plants links where the server
    // writes: the temporary name and the file itself.
    let answer = app
        .chat_ok(
            ALICE,
            "t",
            &format!(
                "[[bash]]f=$HOME/{own}; rm -f \"$f\"; \
                 ln -s {partial} \"$f.partial\"; ln -s {final_} \"$f\"; \
                 echo planted=$(ls -l \"$f\" | wc -l)[[/bash]]",
                own = in_cli_state(&transcript),
                partial = partial_victim.path.display(),
                final_ = final_victim.path.display(),
            ),
        )
        .await;
    assert!(tool_output(&answer).contains("planted=1"), "{answer}");
    let retired = eventually(15, || async { live_processes(&app).await == 0 }).await;
    assert!(retired, "the idle process was retired");
    partial_victim.assert_untouched();
    final_victim.assert_untouched();
    // The CLI finishes its turn after the tool ran and may replace the
    // planted link with a file of its own (as the agent): plant the links
    // again, as the agent would, so the restore meets them for certain.
    let planted_link = |at: &Path, to: &Path| {
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(to, at).unwrap();
        let owner = std::fs::metadata(at.parent().unwrap()).unwrap();
        std::os::unix::fs::lchown(at, Some(owner.uid()), Some(owner.gid())).unwrap();
    };
    if !std::fs::symlink_metadata(&transcript)
        .unwrap()
        .file_type()
        .is_symlink()
    {
        planted_link(&transcript, &final_victim.path);
        let mut partial = transcript.clone().into_os_string();
        partial.push(".partial");
        planted_link(Path::new(&partial), &partial_victim.path);
    }

    // The next process resumes from the database's copy, written anew.
    let data = app.chat_ok(ALICE, "t", "[[recall]]").await;
    assert!(
        data["content"].as_str().unwrap().contains("remember 42"),
        "{data}"
    );
    partial_victim.assert_untouched();
    final_victim.assert_untouched();
    let meta = std::fs::symlink_metadata(&transcript).unwrap();
    assert!(meta.is_file(), "the link was replaced by the rebuilt file");
    if server_is_root() {
        assert_ne!(meta.uid(), 0, "the rebuilt transcript is the agent's");
    }
}

#[actix_web::test]
async fn moving_a_session_rebuilds_its_transcript_and_copies_nothing_the_agent_linked() {
    let app = TestApp::spawn().await;
    // The operator's login and the server's environment, as the agent
    // would aim at them.
    let credentials = Victim::plant_with(
        &app,
        "credentials.json",
        "{\"claudeAiOauth\":{\"accessToken\":\"OPERATOR-TOKEN-MARKER\"}}",
    );
    let write_victim = Victim::plant(&app, "write-target");
    app.create_session(ALICE, "m").await;
    app.chat_ok(ALICE, "m", "remember KIWI").await;
    let workspace = session_row(&app, "alice", "m", "workspace");
    let next = Path::new(&workspace).join("next");
    let next_transcript = claude_code_api_core::cli::command::transcript_path(
        &app.root.path().join("data/cli-config/alice"),
        &next,
        &session_row(&app, "alice", "m", "cli_session_id"),
    );
    let next_folder = next_transcript.parent().unwrap().file_name().unwrap();

    // The agent points its transcript at the secrets, and the place the
    // next folder's transcript goes at a file of the host's.
    let answer = app
        .chat_ok(
            ALICE,
            "m",
            &format!(
                "[[bash]]mkdir -p next; f=$HOME/{own}; \
                 rm -f \"$f\"; ln -s {creds} \"$f\"; ln -s /proc/self/environ \"$f.partial\"; \
                 mkdir -p $HOME/projects/{folder}; \
                 ln -s {victim} $HOME/projects/{folder}/$(basename \"$f\"); \
                 ln -s {victim} $HOME/projects/{folder}/$(basename \"$f\").partial; \
                 echo ok[[/bash]]",
                own = in_cli_state(&transcript_of(&app, "alice", "m")),
                creds = credentials.path.display(),
                victim = write_victim.path.display(),
                folder = next_folder.to_string_lossy(),
            ),
        )
        .await;
    assert!(tool_output(&answer).contains("ok"), "{answer}");

    let res = set_repo(&app, ALICE, "m", &next.to_string_lossy()).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    credentials.assert_untouched();
    write_victim.assert_untouched();
    // The new transcript is the conversation, from the database.
    let meta = std::fs::symlink_metadata(&next_transcript).unwrap();
    assert!(meta.is_file());
    if server_is_root() {
        assert_ne!(meta.uid(), 0, "the agent's");
    }
    let rebuilt = std::fs::read_to_string(&next_transcript).unwrap();
    assert!(rebuilt.contains("remember KIWI"));
    assert!(!rebuilt.contains("OPERATOR-TOKEN-MARKER"));

    // Nothing of the secrets reached what the agent can read, nor the model.
    let answer = app
        .chat_ok(
            ALICE,
            "m",
            // Quoted in halves, so this prompt (in the transcript) holds neither.
            "[[bash]]echo seen=$(grep -rl -e OPERATOR-TOKEN''-MARKER -e CARGO_MANIFEST''_DIR= $HOME . 2>/dev/null | wc -l)[[/bash]]",
        )
        .await;
    assert!(tool_output(&answer).contains("seen=0"), "{answer}");
    let config = app.root.path().join("data/cli-config/alice");
    for marker in ["OPERATOR-TOKEN-MARKER", "CARGO_MANIFEST_DIR="] {
        assert!(grep_tree(&config, marker).is_empty(), "{marker} leaked");
        assert!(
            !app.mock
                .all_requests()
                .iter()
                .any(|r| r.to_string().contains(marker)),
            "{marker} reached the model"
        );
    }
    let data = app.chat_ok(ALICE, "m", "[[recall]]").await;
    assert!(data["content"].as_str().unwrap().contains("remember KIWI"));
}

#[actix_web::test]
async fn a_working_folder_swapped_for_a_link_is_never_mounted() {
    let app = TestApp::spawn().await;
    let marker_dir = app.root.path().join("host");
    std::fs::create_dir_all(&marker_dir).unwrap();
    std::fs::write(marker_dir.join("host-marker.txt"), "HOST-ROOT-MARKER").unwrap();
    app.create_session(ALICE, "r").await;
    app.create_session(ALICE, "helper").await;
    app.chat_ok(ALICE, "r", "[[bash]]mkdir -p repo && echo made[[/bash]]")
        .await;
    let workspace = session_row(&app, "alice", "r", "workspace");
    let repo = Path::new(&workspace).join("repo");

    // Another session of the tenant cannot take a folder of this one's
    // workspace (its agent could swap it under this one).
    let res = set_repo(&app, ALICE, "helper", &repo.to_string_lossy()).await;
    assert_problem(res, 422, "validation-error").await;
    // A link is refused at the door.
    std::os::unix::fs::symlink("/", Path::new(&workspace).join("to-root")).unwrap();
    let res = set_repo(&app, ALICE, "r", "r/to-root").await;
    assert_problem(res, 422, "validation-error").await;

    let res = set_repo(&app, ALICE, "r", &repo.to_string_lossy()).await;
    assert_eq!(res.status(), 200);
    // The agent wins the race: its folder becomes a link to the host's root
    // after the check.
    std::fs::rename(&repo, Path::new(&workspace).join("repo.real")).unwrap();
    std::os::unix::fs::symlink("/", &repo).unwrap();
    let (status, body) = app
        .chat(
            ALICE,
            "r",
            &format!(
                "[[bash]]cat {}/host-marker.txt; ls /root /etc/shadow 2>&1 | head -3[[/bash]]",
                marker_dir.display()
            ),
        )
        .await;
    assert!(
        !body.to_string().contains("HOST-ROOT-MARKER"),
        "the host's root was mounted: {body}"
    );
    assert_ne!(status, 200, "the turn cannot run in a link: {body}");
    assert!(
        body.to_string().contains("working folder"),
        "a clear error: {body}"
    );
}

#[actix_web::test]
async fn the_agent_cannot_make_namespaces_mount_or_trace() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "s").await;
    let answer = app
        .chat_ok(
            ALICE,
            "s",
            "[[bash]]unshare -Ur id >/dev/null 2>&1; echo userns=$?; \
             unshare -n true >/dev/null 2>&1; echo netns=$?; \
             python3 -c 'import os; os.unshare(os.CLONE_NEWUSER)' >/dev/null 2>&1; echo pyuserns=$?; \
             mkdir -p /tmp/m; mount -t tmpfs x /tmp/m >/dev/null 2>&1; echo mount=$?; \
             python3 -c \"import ctypes; print('ptrace=%d' % ctypes.CDLL(None).ptrace(0, 0, 0, 0))\"; \
             python3 -c \"import ctypes; c = ctypes.CDLL(None, use_errno=True); \
             [print('%s=%d/%d' % (n, c.syscall(nr, *a), ctypes.get_errno())) for n, nr, a in \
             [('keyctl', 250, (0, -3, 0)), ('perf', 298, (0, 0, -1, -1, 0)), ('bpf', 321, (0, 0, 0))]]\"; \
             echo threads=$(python3 -c 'import threading; t=threading.Thread(target=print); t.start(); t.join(); print(7)' | tail -1)[[/bash]]",
        )
        .await;
    let out = tool_output(&answer);
    for refused in ["userns", "netns", "pyuserns", "mount"] {
        let code = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{refused}=")))
            .unwrap_or_else(|| panic!("{refused} missing: {out}"));
        assert_ne!(code.trim(), "0", "{refused} must fail: {out}");
    }
    assert!(out.contains("ptrace=-1"), "ptrace is refused: {out}");
    // Refused by the filter itself (EPERM), not by their arguments: without
    // it, keyctl would answer and perf_event_open say EFAULT.
    for call in ["keyctl", "perf", "bpf"] {
        assert!(
            out.contains(&format!("{call}=-1/1")),
            "{call} is refused with EPERM: {out}"
        );
    }
    // Threads (clone3 falls back to clone) still work.
    assert!(out.contains("threads=7"), "{out}");
}

#[actix_web::test]
async fn the_data_folder_and_the_database_are_the_servers_alone() {
    let app = TestApp::spawn().await;
    let data = app.root.path().join("data");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    if !app.db.is_postgres() {
        let mode = std::fs::metadata(&app.db.url).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", app.db.url);
    }
}
