//! Rebuilding the CLI's transcript file from its mirrored lines (see
//! `db::models::transcript`), so `--resume` finds the conversation where
//! the file was purged, lost, or written on another node.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes `lines` as the transcript file at `path`, one per line, through a
/// temporary file and a rename: a half-written transcript is never resumed.
/// The file is private (`0600`) like the CLI's own; the sandbox hands the
/// CLI state to the agent user before the process starts.
pub fn restore(path: &Path, lines: &[String]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension("jsonl.partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_transcript_is_the_lines_in_order() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("projects/-srv-ws/id.jsonl");
        let lines = vec![r#"{"type":"user"}"#.to_owned(), r#"{"a":"é"}"#.to_owned()];
        restore(&path, &lines).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"type\":\"user\"}\n{\"a\":\"é\"}\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!path.with_extension("jsonl.partial").exists());
    }
}
