//! Handing freed memory back to the system after a burst of allocation. Making a page of
//! tens of thousands of files allocates hundreds of megabytes of small, short-lived
//! objects; glibc's allocator keeps what they freed mapped (a 40,000-file mirrored page left
//! a server at 268 MB, 77 MB once trimmed), so the server outgrows its page budget without
//! holding anything. musl's allocator returns such memory by itself.

/// Returns the heap's free pages to the system (glibc's `malloc_trim`); a no-op elsewhere.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Caps glibc's allocator at one arena per core (its default is eight per core). A thread
/// that finds the arenas in use takes one of its own, and what it frees stays in that arena:
/// after five remakes of a 40,000-file page, on the request threads and the gzip threads, a
/// server held 117–130 MB with the default, and with two arenas on two cores 88–105 MB in
/// 12 runs of 14, 116–123 MB in the other two (bench/RESULTS.md). glibc fixes the cap when it
/// makes its first extra arena, so this is called before any other thread starts; a no-op
/// elsewhere.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let cores = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets one of the allocator's parameters; it has no preconditions.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores);
        }
    }
}
