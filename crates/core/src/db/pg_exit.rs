//! Letting a process that talks to PostgreSQL exit without crashing.
//!
//! r2d2 opens connections from background threads whenever the pool wants
//! more, so one may still be connecting when the process exits. Two libraries
//! libpq loads then fail in their exit-time cleanup (seen here: a SIGSEGV or
//! an abort in 8 of 30 runs of a probe that exits while its pools fill):
//! - OpenSSL frees its locks from an `atexit` handler. Asking it, before
//!   libpq first initialises it, not to register that handler leaves the
//!   cleanup to the operating system, which exit does anyway.
//! - Kerberos (libpq first tries GSSAPI encryption) destroys its mutexes in
//!   a library destructor. Unless the URL or `PGGSSENCMODE` asks for GSSAPI
//!   encryption, connections skip it (`gssencmode=disable`), so Kerberos is
//!   never entered.

use std::ffi::{c_int, c_void};
use std::sync::Once;

/// `OPENSSL_INIT_NO_ATEXIT` from `<openssl/crypto.h>` (OpenSSL ≥ 1.1.1b).
const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;

#[link(name = "crypto")]
extern "C" {
    fn OPENSSL_init_crypto(opts: u64, settings: *const c_void) -> c_int;
}

/// Call before the first PostgreSQL connection; later calls do nothing.
pub fn skip_openssl_exit_cleanup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: documented OpenSSL entry point, called with a null settings
        // pointer (allowed) before this process opens any TLS connection.
        let ok = unsafe { OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, std::ptr::null()) };
        if ok != 1 {
            tracing::warn!("OpenSSL initialisation failed; PostgreSQL TLS may not work");
        }
    });
}

/// `url` with `gssencmode=disable` unless GSSAPI encryption was asked for
/// (in the URL, or `gss_env` = `PGGSSENCMODE`).
pub fn without_gss_by_default(url: &str, gss_env: Option<&str>) -> String {
    let asked = gss_env.is_some_and(|v| !v.is_empty())
        || url
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("gssencmode=")));
    if asked {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}gssencmode=disable")
}

#[cfg(test)]
mod tests {
    use super::without_gss_by_default as f;

    #[test]
    fn gss_is_skipped_unless_asked_for() {
        assert_eq!(
            f("postgres://u@h/db", None),
            "postgres://u@h/db?gssencmode=disable"
        );
        assert_eq!(
            f("postgres://u@h/db?sslmode=require", None),
            "postgres://u@h/db?sslmode=require&gssencmode=disable"
        );
        let asked = "postgres://u@h/db?sslmode=require&gssencmode=require";
        assert_eq!(f(asked, None), asked);
        assert_eq!(f("postgres://u@h/db", Some("prefer")), "postgres://u@h/db");
    }
}
