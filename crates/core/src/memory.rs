//! Giving memory back to the system once the server goes quiet. glibc's
//! allocator keeps the pages of freed memory for reuse: after thousands of
//! sessions each used once, the live data is a few MiB but the process
//! would hold hundreds until it exits.

/// Returns the free pages the allocator holds to the system. Takes a few
/// milliseconds on a large heap: run it on the blocking pool.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives back pages that hold no allocation; it
    // is thread-safe and touches no live memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
