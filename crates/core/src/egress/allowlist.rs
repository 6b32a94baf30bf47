//! A tenant's egress allowlist: what a pattern may be, and which hosts it
//! matches. `example.com` matches that name only; `*.example.com` matches
//! every name below it (`a.example.com`, `a.b.example.com`), not
//! `example.com` itself.

/// Most patterns a tenant may have.
pub const MAX_PATTERNS: usize = 200;

/// A pattern in its stored form (lower case, no trailing dot), or why it is
/// not one.
pub fn normalize(raw: &str) -> Result<String, String> {
    if raw.len() > 253 {
        return Err(format!("{:?}… is longer than 253 characters", clip(raw)));
    }
    let pattern = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    let name = pattern.strip_prefix("*.").unwrap_or(&pattern);
    if !is_host_name(name) {
        return Err(format!(
            "{raw:?} is not a host name or a `*.` wildcard over one (e.g. example.com, *.example.com)"
        ));
    }
    if pattern.starts_with("*.") && !name.contains('.') {
        return Err(format!(
            "{raw:?} is too wide: a wildcard needs at least two labels after `*.`"
        ));
    }
    Ok(pattern)
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A DNS name (or a dotted IPv4 address): labels of 1-63 letters, digits
/// and inner hyphens, 253 characters in all.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The host as patterns are compared with it; `None` when it is no host name.
pub fn host_key(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    is_host_name(&host).then_some(host)
}

/// Whether any of `patterns` (normalized) matches `host` (a `host_key`).
pub fn allows(patterns: &[String], host: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(base) => host
                .strip_suffix(base)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => pattern == host,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_normalized_or_refused() {
        assert_eq!(normalize("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize("*.npmjs.org").unwrap(), "*.npmjs.org");
        assert_eq!(normalize("127.0.0.2").unwrap(), "127.0.0.2");
        for bad in [
            "",
            "*",
            "*.com",
            "a..b",
            "-a.com",
            "a-.com",
            "a b.com",
            "a.com/x",
            "a.com:80",
            "*.*.a.com",
            "a.*.com",
            "ünï.com",
            "[::1]",
            "http://a.com",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert!(normalize(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn exact_names_and_wildcards_match() {
        let list = vec!["example.com".to_string(), "*.npmjs.org".to_string()];
        assert!(allows(&list, "example.com"));
        assert!(!allows(&list, "www.example.com"));
        assert!(!allows(&list, "badexample.com"));
        assert!(allows(&list, "registry.npmjs.org"));
        assert!(allows(&list, "a.b.npmjs.org"));
        assert!(!allows(&list, "npmjs.org"));
        assert!(!allows(&list, "evilnpmjs.org"));
        assert!(!allows(&[], "example.com"));
        assert_eq!(host_key("Example.com.").as_deref(), Some("example.com"));
        assert_eq!(host_key("a/b"), None);
    }
}
