//! The rules of the layout that the compiler alone does not keep: the core
//! crate knows no HTTP framework, the HTTP edge reaches storage only through
//! the services, and handlers do not import each other.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_core_crate_depends_on_no_http_framework() {
    let manifest = read(&root().join("crates/core/Cargo.toml"));
    for framework in [
        "actix-web",
        "actix-web-lab",
        "actix-multipart",
        "actix-files",
        "rmcp",
    ] {
        assert!(
            !manifest
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{framework} "))
                    || l.trim_start().starts_with(&format!("{framework}."))),
            "crates/core depends on {framework}"
        );
    }
    for file in sources(&root().join("crates/core/src")) {
        assert!(
            !read(&file).contains("actix_web"),
            "{} names actix_web",
            file.display()
        );
    }
}

#[test]
fn the_http_edge_reaches_storage_only_through_services() {
    for dir in ["src/api", "src/console", "src/identity"] {
        for file in sources(&root().join(dir)) {
            let text = read(&file);
            for forbidden in ["db::run(", "diesel::", "db::schema"] {
                assert!(
                    !text.contains(forbidden),
                    "{} uses {forbidden}: add a service instead",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn handlers_do_not_import_each_other() {
    let api = root().join("src/api");
    // Handler modules: the files of `src/api` that serve routes.
    let handlers: Vec<String> = sources(&api)
        .into_iter()
        .filter(|f| f.parent() == Some(api.as_path()))
        .filter(|f| read(f).contains("#[utoipa::path("))
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|name| name != "openapi")
        .collect();
    assert!(handlers.len() > 10, "handlers found: {handlers:?}");
    for file in sources(&root().join("src")) {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The route table and the document list every handler by design.
        if ["routes", "openapi"].contains(&name.as_str()) {
            continue;
        }
        let text = read(&file);
        for other in &handlers {
            if *other == name {
                continue;
            }
            for spelling in [
                format!("super::{other}::"),
                format!("crate::api::{other}::"),
                format!("use super::{other};"),
            ] {
                assert!(
                    !text.contains(&spelling),
                    "{} imports the handler module {other}: move what both need to api/views or a service",
                    file.display()
                );
            }
        }
    }
}
