//! A snapshot made a workspace again: every folder and file of the
//! manifest created fresh in the new (empty, server-made) workspace through
//! `sandbox::Tree` (by descriptor, `O_EXCL`, no link followed), with its
//! permission bits only, owned by the agent user. Blocking.

use std::io;
use std::path::Path;

use super::{Manifest, SessionStore};
use crate::sandbox::{Owner, Tree};

/// Writes the files of `manifest` (from `store`) into `workspace`.
pub fn restore(
    store: &SessionStore,
    manifest: &Manifest,
    workspace: &Tree,
    owner: Owner,
) -> io::Result<()> {
    for entry in &manifest.entries {
        let path = Path::new(&entry.path);
        match &entry.blob {
            None => workspace.make_folder(path, entry.mode, owner)?,
            Some(blob) => {
                let mut from = store.open_blob(blob)?;
                let mut to = workspace.make_file(path, entry.mode, owner)?;
                io::copy(&mut from, &mut to)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::super::{take, Limits, NotTaken};
    use super::*;

    fn dir(path: &Path) -> cap_std::fs::Dir {
        cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority()).unwrap()
    }

    const ROOMY: Limits = Limits {
        max_bytes: 1 << 20,
        max_files: 100,
    };

    #[test]
    fn a_snapshot_restores_files_folders_and_modes_without_links_or_special_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "SECRET").unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("src/deep")).unwrap();
        std::fs::write(ws.join("src/deep/a.txt"), "alpha").unwrap();
        std::fs::write(ws.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(ws.join("run.sh"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::os::unix::fs::symlink(&secret, ws.join("leak")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), ws.join("src/up")).unwrap();
        std::fs::hard_link(&secret, ws.join("hard")).unwrap();

        let store = SessionStore::new(&tmp.path().join("store"), "s1");
        let manifest = take(&store, &dir(&ws), None, ROOMY).unwrap();
        let paths: Vec<_> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["run.sh", "src", "src/deep", "src/deep/a.txt"]);

        let copy = tmp.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        restore(&store, &manifest, &Tree::open(&copy).unwrap(), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(copy.join("src/deep/a.txt")).unwrap(),
            "alpha"
        );
        let mode = std::fs::metadata(copy.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        for absent in ["leak", "hard", "src/up"] {
            assert!(
                std::fs::symlink_metadata(copy.join(absent)).is_err(),
                "{absent}"
            );
        }
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "SECRET");
    }

    #[test]
    fn unchanged_files_reuse_their_blob_and_dropped_turns_free_theirs() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join("same"), "same").unwrap();
        std::fs::write(ws.join("changed"), "one").unwrap();
        let store = SessionStore::new(&tmp.path().join("store"), "s1");
        let first = take(&store, &dir(&ws), None, ROOMY).unwrap();
        store.save_manifest(1, &first).unwrap();
        std::fs::write(ws.join("changed"), "two!").unwrap();
        let second = take(
            &store,
            &dir(&ws),
            store.latest_manifest().unwrap().as_ref(),
            ROOMY,
        )
        .unwrap();
        store.save_manifest(2, &second).unwrap();
        assert_eq!(first.entries[1].blob, second.entries[1].blob, "same");
        assert_ne!(first.entries[0].blob, second.entries[0].blob, "changed");
        let blobs = || {
            std::fs::read_dir(tmp.path().join("store/s1/blobs"))
                .unwrap()
                .count()
        };
        assert_eq!(blobs(), 3);
        store.drop_turns(&[1]).unwrap();
        assert_eq!(blobs(), 2);
        assert!(store.manifest(1).unwrap().is_none());
        store.remove().unwrap();
        assert!(!tmp.path().join("store/s1").exists());
    }

    #[test]
    fn a_workspace_over_a_limit_gets_no_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        for i in 0..5 {
            std::fs::write(ws.join(format!("f{i}")), "12345").unwrap();
        }
        let store = SessionStore::new(&tmp.path().join("store"), "s1");
        let few = Limits {
            max_bytes: 1 << 20,
            max_files: 4,
        };
        assert!(
            matches!(take(&store, &dir(&ws), None, few), Err(NotTaken::OverLimit(m)) if m.contains("SNAPSHOT_MAX_FILES"))
        );
        let small = Limits {
            max_bytes: 20,
            max_files: 100,
        };
        assert!(
            matches!(take(&store, &dir(&ws), None, small), Err(NotTaken::OverLimit(m)) if m.contains("SNAPSHOT_MAX_MB"))
        );
    }
}
