//! Which requests the gateway forwards at all: the (method, path) pairs a
//! CLI turn needs, and nothing else. The token's holder is the agent, which
//! runs whatever the model (or a prompt injection) chose, so every other
//! endpoint the real credential opens (files, batches, models, the login's
//! `/api/oauth/*`) stays shut.
//!
//! The target is checked as it arrived, byte for byte, before anything
//! decodes or normalises it: an upstream (or a proxy in between) may
//! resolve `/v1/x/../messages` or `/v1/%6Dessages` to an endpoint, so such
//! spellings are refused instead of being matched after a normalisation
//! that might differ from the upstream's.

/// What the pinned CLI calls, found by logging every request of a turn
/// (with an API key and with the login, tools included): `POST
/// /v1/messages?beta=true`; token counting is free and kept for the CLI's
/// own counting.
const ROUTES: &[(&str, Route)] = &[
    ("/v1/messages", Route::Messages),
    ("/v1/messages/count_tokens", Route::CountTokens),
];

/// The query strings the CLI sends (none, or `beta=true`).
const QUERIES: &[&str] = &["beta=true"];

/// A request the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/messages`: a model call, metered and charged.
    Messages,
    /// `POST /v1/messages/count_tokens`: free, forwarded unmetered.
    CountTokens,
}

/// Why a request is not forwarded; the label of the refusal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `.`/`..` segments, an empty segment (`//`), a percent-encoding or a
    /// backslash: a spelling that may name another endpoint once decoded.
    NotNormalised,
    /// A well-formed target that is not one of the CLI's.
    NotAllowed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotNormalised => "not_normalised",
            Refusal::NotAllowed => "not_allowed",
        }
    }
}

/// The route of `method path?query` (the request target as it arrived), or
/// why it is refused.
pub fn check(method: &str, path: &str, query: Option<&str>) -> Result<Route, Refusal> {
    if !is_normalised(path) {
        return Err(Refusal::NotNormalised);
    }
    let query_ok = query.is_none_or(|q| q.is_empty() || QUERIES.contains(&q));
    let route = ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, route)| *route);
    match route {
        Some(route) if method == "POST" && query_ok => Ok(route),
        _ => Err(Refusal::NotAllowed),
    }
}

/// An absolute path of non-empty segments, none of them `.` or `..`, with
/// no percent-encoding and no backslash: the one spelling of its endpoint.
fn is_normalised(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    !path.contains(['%', '\\'])
        && rest
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_str(method: &str, target: &str) -> Result<Route, Refusal> {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        check(method, path, query)
    }

    #[test]
    fn only_the_clis_calls_pass() {
        assert_eq!(check_str("POST", "/v1/messages"), Ok(Route::Messages));
        assert_eq!(
            check_str("POST", "/v1/messages?beta=true"),
            Ok(Route::Messages)
        );
        assert_eq!(
            check_str("POST", "/v1/messages/count_tokens?beta=true"),
            Ok(Route::CountTokens)
        );
        for (method, target) in [
            ("GET", "/v1/messages"),
            ("GET", "/v1/models"),
            ("GET", "/v1/files"),
            ("POST", "/v1/files"),
            ("GET", "/v1/messages/batches"),
            ("POST", "/v1/messages/batches"),
            ("GET", "/api/oauth/profile"),
            ("POST", "/api/oauth/claude_cli/create_api_key"),
            ("POST", "/v1/messages?beta=true&x=1"),
            ("POST", "/v1/messages?beta=false"),
        ] {
            assert_eq!(
                check_str(method, target),
                Err(Refusal::NotAllowed),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn other_spellings_of_an_allowed_path_are_refused() {
        for target in [
            "/v1/./messages",
            "/v1/x/../messages",
            "//v1/messages",
            "/v1//messages",
            "/v1/%6Dessages",
            "/v1/messages%2Fcount_tokens",
            "/v1/%2e/messages",
            "/v1/messages/.",
            "/v1/messages/",
            "/v1\\messages",
        ] {
            assert_eq!(
                check_str("POST", target),
                Err(Refusal::NotNormalised),
                "{target}"
            );
        }
    }
}
