//! A unified diff as JSON: files, their hunks and counts.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DiffStat {
    pub files: u64,
    pub additions: u64,
    pub deletions: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileDiff {
    pub path: String,
    /// The name before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// `added`, `deleted`, `modified` or `renamed`.
    pub status: &'static str,
    pub additions: u64,
    pub deletions: u64,
    pub binary: bool,
    /// Absent in a `?stat=true` answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hunks: Option<Vec<Hunk>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hunk {
    /// `@@ -a,b +c,d @@ …`
    pub header: String,
    /// Its lines, each with its ` `, `+` or `-`.
    pub lines: Vec<String>,
}

/// Parses `git diff --patch` output.
pub fn parse_patch(patch: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            let path = rest
                .rsplit_once(" b/")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_else(|| rest.to_owned());
            files.push(FileDiff {
                path,
                old_path: None,
                status: "modified",
                additions: 0,
                deletions: 0,
                binary: false,
                hunks: Some(Vec::new()),
            });
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        let hunks = file.hunks.get_or_insert_with(Vec::new);
        if line.starts_with("@@") {
            hunks.push(Hunk {
                header: line.to_owned(),
                lines: Vec::new(),
            });
        } else if let Some(hunk) = hunks.last_mut() {
            if line.starts_with('+') {
                file.additions += 1;
            } else if line.starts_with('-') {
                file.deletions += 1;
            }
            hunk.lines.push(line.to_owned());
        } else if line.starts_with("new file mode") {
            file.status = "added";
        } else if line.starts_with("deleted file mode") {
            file.status = "deleted";
        } else if let Some(from) = line.strip_prefix("rename from ") {
            file.status = "renamed";
            file.old_path = Some(from.to_owned());
        } else if let Some(to) = line.strip_prefix("rename to ") {
            file.path = to.to_owned();
        } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
            file.binary = true;
        }
    }
    files
}

/// Parses `git diff --numstat` output (`-\t-` for a binary file; a rename
/// as `old => new`).
pub fn parse_numstat(text: &str) -> Vec<FileDiff> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let (add, del, path) = (parts.next()?, parts.next()?, parts.next()?);
            let binary = add == "-";
            let (old_path, path) = match path.split_once(" => ") {
                Some((old, new)) if !path.contains('{') => (Some(old.to_owned()), new.to_owned()),
                _ => (None, path.to_owned()),
            };
            Some(FileDiff {
                status: if old_path.is_some() {
                    "renamed"
                } else {
                    "modified"
                },
                path,
                old_path,
                additions: add.parse().unwrap_or(0),
                deletions: del.parse().unwrap_or(0),
                binary,
                hunks: None,
            })
        })
        .collect()
}

pub fn stat_of(files: &[FileDiff]) -> DiffStat {
    DiffStat {
        files: files.len() as u64,
        additions: files.iter().map(|f| f.additions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_becomes_files_and_hunks() {
        let patch = "diff --git a/a.txt b/a.txt\nindex 1..2 100644\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n-old\n+new\n+more\ndiff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+hi\n";
        let files = parse_patch(patch);
        assert_eq!(files.len(), 2);
        assert_eq!((files[0].additions, files[0].deletions), (2, 1));
        assert_eq!(files[1].status, "added");
        assert_eq!(
            files[0].hunks.as_ref().unwrap()[0].lines,
            vec!["-old", "+new", "+more"]
        );
        let stat = stat_of(&files);
        assert_eq!((stat.files, stat.additions, stat.deletions), (2, 3, 1));
    }

    #[test]
    fn numstat_counts_and_binaries() {
        let files = parse_numstat("3\t1\tsrc/a.rs\n-\t-\timg.png\n");
        assert_eq!(files[0].additions, 3);
        assert!(files[1].binary);
    }
}
