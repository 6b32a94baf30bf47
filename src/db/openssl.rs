//! libpq speaks TLS through OpenSSL, also from r2d2's background threads,
//! which open connections whenever the pool wants more. OpenSSL registers an
//! exit handler that frees its locks; a process that exits while such a
//! thread is still connecting then crashes (SIGSEGV) on its way out. Asking
//! OpenSSL, before libpq first initialises it, not to register that handler
//! leaves the cleanup to the operating system, which is what exit does anyway.

use std::ffi::{c_int, c_void};
use std::sync::Once;

/// `OPENSSL_INIT_NO_ATEXIT` from `<openssl/crypto.h>` (OpenSSL ≥ 1.1.1b).
const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;

#[link(name = "crypto")]
extern "C" {
    fn OPENSSL_init_crypto(opts: u64, settings: *const c_void) -> c_int;
}

/// Call before the first PostgreSQL connection; later calls do nothing.
pub fn skip_exit_cleanup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: documented OpenSSL entry point, called with a null settings
        // pointer (allowed) before any other thread of ours uses OpenSSL.
        let ok = unsafe { OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, std::ptr::null()) };
        if ok != 1 {
            tracing::warn!("OpenSSL initialisation failed; PostgreSQL TLS may not work");
        }
    });
}
