//! Rebuilding the CLI's transcript file from its mirrored lines (see
//! `db::models::transcript`), so `--resume` finds the conversation where
//! the file was purged, lost, written on another node, or is needed under
//! another working folder. The CLI state folder is the agent's to write:
//! the file is never copied from it, only written from the database copy,
//! through `sandbox::Tree` (no link followed, a fresh file renamed into
//! place).

use std::io;
use std::path::Path;

use crate::sandbox::{Owner, Tree};

/// Whether the transcript `folder/file` is there as a regular file (a link
/// planted in its place is not a transcript: it is rebuilt over).
pub fn exists(config: &Tree, folder: &Path, file: &str) -> io::Result<bool> {
    match config.subtree(folder, None) {
        Ok(dir) => dir.has_file(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `lines` as the transcript `folder/file` of the CLI state folder
/// `config`, one per line, private (`0600`) and owned by the agent user
/// `owner` like the CLI's own; missing folders are made, also the agent's.
pub fn restore(
    config: &Tree,
    folder: &Path,
    file: &str,
    lines: &[String],
    owner: Owner,
) -> io::Result<()> {
    config
        .subtree(folder, Some(owner))?
        .write_lines(file, lines, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_transcript_is_the_lines_in_order() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let config = Tree::open(tmp.path()).unwrap();
        let folder = Path::new("projects/-srv-ws");
        assert!(!exists(&config, folder, "id.jsonl").unwrap());
        let lines = vec![r#"{"type":"user"}"#.to_owned(), r#"{"a":"é"}"#.to_owned()];
        restore(&config, folder, "id.jsonl", &lines, None).unwrap();
        let path = tmp.path().join("projects/-srv-ws/id.jsonl");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"type\":\"user\"}\n{\"a\":\"é\"}\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(exists(&config, folder, "id.jsonl").unwrap());
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("root-owned");
        std::fs::write(&victim, "keep").unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir_all(state.join("projects/-w")).unwrap();
        for planted in ["id.jsonl", "id.jsonl.partial"] {
            std::os::unix::fs::symlink(&victim, state.join("projects/-w").join(planted)).unwrap();
        }
        let config = Tree::open(&state).unwrap();
        let folder = Path::new("projects/-w");
        assert!(!exists(&config, folder, "id.jsonl").unwrap());
        restore(&config, folder, "id.jsonl", &["x".into()], None).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // A linked folder is refused rather than written through.
        std::fs::remove_dir_all(state.join("projects")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), state.join("projects")).unwrap();
        assert!(restore(&config, folder, "id.jsonl", &["x".into()], None).is_err());
        assert!(!tmp.path().join("-w").exists());
    }
}
