//! The files API's path rules as the document states them: the patterns of
//! a relative path and of a file named in the URL, and where they apply.
//! `security::paths::parse_relative` is what enforces them; a test keeps the
//! two in agreement.

use serde_json::{json, Value};

/// One component of a relative path: no `/`, `\` or NUL, and not `..`
/// (`.` is allowed and means nothing).
macro_rules! segment {
    () => {
        r"(?:[^/\\\x00.][^/\\\x00]*|\.(?:[^/\\\x00.][^/\\\x00]*)?|\.\.[^/\\\x00]+)"
    };
}

/// One component that names something: neither `.` nor `..`.
macro_rules! name {
    () => {
        r"(?:[^/\\\x00.][^/\\\x00]*|\.[^/\\\x00.][^/\\\x00]*|\.\.[^/\\\x00]+)"
    };
}

/// A folder or file relative to the workspace, as `paths::parse_relative`
/// takes it: components joined by `/`, none `..`, no leading `/`; empty is
/// the workspace itself.
pub const RELATIVE_PATH: &str = concat!("^(?:", segment!(), "(?:/(?:", segment!(), ")?)*)?$");

/// A file path as a path parameter: OpenAPI cannot describe a parameter
/// spanning URL segments, so the schema shows one name (not `.`); nested
/// paths are written with plain `/` (`files/out/report.md`).
pub const FILE_IN_PATH: &str = concat!("^", name!(), "$");

const PATH_RULES: &str = " Relative to the workspace: no leading `/`, no `..` component, no `\\` \
    or NUL; a component may not percent-decode to `.`, `..` or a separator; at most 4096 bytes, \
    255 per component.";

/// The parameters of `method path`, if it has any (never adds one).
fn parameters<'a>(doc: &'a mut Value, path: &str, method: &str) -> Option<&'a mut Vec<Value>> {
    let pointer = format!("/paths/{}/{method}/parameters", path.replace('/', "~1"));
    doc.pointer_mut(&pointer).and_then(Value::as_array_mut)
}

/// The path rules of the files API, on every parameter naming a path; and
/// a download's media type, which follows the file's name.
pub fn document(doc: &mut Value) {
    for status in ["200", "206"] {
        let pointer = format!(
            "/paths/~1api~1v1~1sessions~1{{name}}~1files~1{{path}}/get/responses/{status}/content"
        );
        if let Some(content) = doc.pointer_mut(&pointer) {
            *content = json!({"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}});
        }
    }
    let targets: &[(&str, &str, &str, &str)] = &[
        (
            "/api/v1/sessions/{name}/files",
            "post",
            "path",
            RELATIVE_PATH,
        ),
        (
            "/api/v1/sessions/{name}/files",
            "get",
            "path",
            RELATIVE_PATH,
        ),
        (
            "/api/v1/sessions/{name}/archive",
            "get",
            "path",
            RELATIVE_PATH,
        ),
        (
            "/api/v1/sessions/{name}/files/{path}",
            "get",
            "path",
            FILE_IN_PATH,
        ),
        (
            "/api/v1/sessions/{name}/files/{path}",
            "delete",
            "path",
            FILE_IN_PATH,
        ),
    ];
    // `flags::parse_bool`: these flags take `true`/`1` or `false`/`0`/empty.
    let flags: &[(&str, &str, &str)] = &[
        ("/api/v1/health", "get", "deep"),
        ("/health", "get", "deep"),
        ("/api/v1/sessions/{name}/files", "post", "overwrite"),
        ("/api/v1/sessions/{name}/files", "get", "recursive"),
        ("/api/v1/sessions/{name}/files", "get", "hidden"),
    ];
    for (path, method, name) in flags {
        let Some(params) = parameters(doc, path, method) else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["name"] == *name) {
            param["schema"] = json!({"type": "string", "enum": ["true", "false", "1", "0", ""]});
        }
    }
    for (path, method, name, pattern) in targets {
        let Some(params) = parameters(doc, path, method) else {
            continue;
        };
        for param in params.iter_mut().filter(|p| p["name"] == *name) {
            param["schema"]["pattern"] = json!(pattern);
            let described = param["description"].as_str().unwrap_or_default().to_owned();
            param["description"] = json!(format!("{described}.{PATH_RULES}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claude_code_api_core::security::paths::parse_relative;

    /// The documented path patterns say what `parse_relative` decides.
    #[test]
    fn path_patterns_agree_with_the_path_check() {
        let pattern = |p: &str| {
            jsonschema::validator_for(&json!({"type": "string", "pattern": p})).expect("compiles")
        };
        let (relative, file) = (pattern(RELATIVE_PATH), pattern(FILE_IN_PATH));
        let samples = [
            "",
            "a",
            "a/b",
            "a//b/",
            ".",
            "./a",
            "...",
            "..a",
            "a..",
            ".hidden/x",
            "a b/c",
            "..",
            "../a",
            "a/../b",
            "a/..",
            "/etc",
            "a\\b",
            "a\u{0}b",
            "\\a",
        ];
        for sample in samples {
            let accepted = parse_relative(sample).is_ok();
            assert_eq!(relative.is_valid(&json!(sample)), accepted, "{sample:?}");
            // One named component, as a path parameter.
            let one_name = accepted
                && !sample.contains('/')
                && parse_relative(sample).is_ok_and(|p| !p.as_os_str().is_empty());
            assert_eq!(file.is_valid(&json!(sample)), one_name, "{sample:?}");
        }
    }
}
