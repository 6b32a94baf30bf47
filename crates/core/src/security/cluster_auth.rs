//! How the nodes of a cluster recognise each other's forwarded requests:
//! `x-cluster-auth: <unix seconds>.<hex HMAC-SHA256 of
//! "{seconds}.{method}.{path and query}.{instance}">`, keyed with
//! `CLUSTER_SECRET`. A signature older than `MAX_AGE_SECS` is refused, so a
//! captured header is soon useless.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const AUTH_HEADER: &str = "x-cluster-auth";
/// The instance that forwarded the request (signed with it).
pub const FROM_HEADER: &str = "x-cluster-from";
/// The client's address as the first node saw it.
pub const CLIENT_HEADER: &str = "x-cluster-client";

const MAX_AGE_SECS: i64 = 60;

fn mac(secret: &str, secs: i64, method: &str, path: &str, from: &str) -> Vec<u8> {
    // Any key length is accepted by HMAC.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("{secs}.{method}.{path}.{from}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `x-cluster-auth` value for a request forwarded now.
pub fn sign(secret: &str, method: &str, path: &str, from: &str) -> String {
    let secs = chrono::Utc::now().timestamp();
    format!("{secs}.{}", hex(&mac(secret, secs, method, path, from)))
}

/// Whether `header` signs this request, recently, with the cluster's secret.
pub fn verify(secret: &str, header: &str, method: &str, path: &str, from: &str) -> bool {
    let Some((secs, given)) = header.split_once('.') else {
        return false;
    };
    let Ok(secs) = secs.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - secs).abs() > MAX_AGE_SECS {
        return false;
    }
    let expected = hex(&mac(secret, secs, method, path, from));
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_request_and_secret() {
        let header = sign(
            "s3cret-s3cret-s3cret",
            "POST",
            "/api/v1/sessions/a/chat",
            "n1",
        );
        assert!(verify(
            "s3cret-s3cret-s3cret",
            &header,
            "POST",
            "/api/v1/sessions/a/chat",
            "n1"
        ));
        assert!(!verify(
            "other-secret-other",
            &header,
            "POST",
            "/api/v1/sessions/a/chat",
            "n1"
        ));
        assert!(!verify(
            "s3cret-s3cret-s3cret",
            &header,
            "GET",
            "/api/v1/sessions/a/chat",
            "n1"
        ));
        assert!(!verify(
            "s3cret-s3cret-s3cret",
            &header,
            "POST",
            "/api/v1/sessions/b/chat",
            "n1"
        ));
        assert!(!verify(
            "s3cret-s3cret-s3cret",
            &header,
            "POST",
            "/api/v1/sessions/a/chat",
            "n2"
        ));
        assert!(!verify(
            "s3cret-s3cret-s3cret",
            "garbage",
            "POST",
            "/",
            "n1"
        ));
    }

    #[test]
    fn an_old_signature_is_refused() {
        let secs = chrono::Utc::now().timestamp() - 3600;
        let old = format!("{secs}.{}", hex(&mac("k", secs, "GET", "/", "n")));
        assert!(!verify("k", &old, "GET", "/", "n"));
    }
}
