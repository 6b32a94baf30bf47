//! The documentation stays true: every relative link of the README, the
//! architecture map and the book leads somewhere, every chapter is in the
//! book's summary, every module the architecture map names exists, and the
//! README's two set-up commands are the ones CI runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn book_pages() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("docs/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// A heading's anchor as GitHub and mdBook make it.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    let text = read(path);
    prose(&text)
        .into_iter()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|rest| slug(rest.trim_start_matches('#')))
        .collect()
}

/// `[label](target)` targets of a Markdown text (code left out).
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

/// Every broken relative link of `page`, as `target (why)`.
fn broken_links(page: &Path) -> Vec<String> {
    let dir = page.parent().unwrap_or(root());
    let mut broken = Vec::new();
    for target in links(&read(page)) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (target.as_str(), None),
        };
        let resolved = if file.is_empty() {
            page.to_path_buf()
        } else {
            dir.join(file)
        };
        if !resolved.exists() {
            broken.push(format!("{target} (no such file)"));
            continue;
        }
        if let Some(anchor) = anchor {
            if resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&resolved).contains(anchor)
            {
                broken.push(format!("{target} (no such heading)"));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_leads_somewhere() {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    pages.extend(book_pages());
    let mut broken = Vec::new();
    for page in &pages {
        for link in broken_links(page) {
            broken.push(format!("{}: {link}", page.display()));
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn a_broken_link_is_seen() {
    let dir = tempfile_dir();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "# Title\n[ok](#title) [gone](missing.md) [bad](#nowhere)\n```\n[code](ignored.md)\n```\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let broken = broken_links(&page);
    assert_eq!(
        broken,
        vec!["missing.md (no such file)", "#nowhere (no such heading)"]
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("docs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary_path = root().join("docs/src/SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&read(&summary_path))
        .into_iter()
        .map(|l| root().join("docs/src").join(l))
        .collect();
    for page in book_pages() {
        if page == summary_path {
            continue;
        }
        assert!(
            listed.contains(&page),
            "{} is not in SUMMARY.md",
            page.display()
        );
    }
}

/// Every file and folder of the code, as paths relative to their crate's
/// `src/` (and the repository's top folders), each folder ending in `/`.
fn code_paths() -> Vec<String> {
    let mut out = Vec::new();
    for top in [
        "src",
        "crates/core/src",
        "crates/testkit/src",
        "migrations",
        "config",
    ] {
        let base = root().join(top);
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                let relative = path
                    .strip_prefix(&base)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let from_root = path
                    .strip_prefix(root())
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if path.is_dir() {
                    stack.push(path.clone());
                    out.push(format!("{relative}/"));
                    out.push(format!("{from_root}/"));
                } else {
                    out.push(relative);
                    out.push(from_root);
                }
            }
        }
    }
    out
}

#[test]
fn every_module_the_architecture_map_names_exists() {
    let text = read(&root().join("ARCHITECTURE.md"));
    let paths = code_paths();
    // A name may be given relative to the folder the text is about
    // (`running.rs` in the session actor's paragraph): it must be the end
    // of some path of the code.
    let exists = |name: &str| {
        root().join(name).exists()
            || paths
                .iter()
                .any(|p| p == name || p.ends_with(&format!("/{name}")))
    };
    let mut checked = 0;
    let mut missing = Vec::new();
    for line in prose(&text) {
        for (i, part) in line.split('`').enumerate() {
            // Odd parts are inside backquotes.
            let is_path = i % 2 == 1
                && !part.contains([' ', '{', '*'])
                && (part.ends_with(".rs") || (part.ends_with('/') && part.len() > 1));
            if !is_path {
                continue;
            }
            checked += 1;
            if !exists(part) {
                missing.push(part.to_owned());
            }
        }
    }
    assert!(checked > 30, "only {checked} module names found");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist: {missing:?}"
    );
}

#[test]
fn the_readme_set_up_commands_are_the_ones_ci_runs() {
    let readme = read(&root().join("README.md"));
    assert!(
        readme.lines().count() <= 150,
        "the README is one or two screens"
    );
    assert!(readme.contains("\nscripts/install-cli.sh && cargo run --release -- serve\n"));
    assert!(readme.contains("\nscripts/test.sh\n"));
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.contains("scripts/test.sh"),
        ".ci/run runs the README's test command"
    );
}
