//! The two audited calls into glibc's allocator that keep the agent's
//! resident size close to its live heap on large tables. The only `unsafe`
//! of the agent besides building a link-layer address for announcements.

/// Hands the heap's free pages back to the kernel. A full sync of a large
/// table builds its plan, desired state and operations at once and frees them
/// afterwards; glibc keeps such pages (fragmented between live objects, and in
/// the arenas of the threads that parsed the input), so without this the
/// resident size would stay at the sync's peak.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Glibc arenas the agent's threads share. By default glibc gives busy
/// threads arenas of their own (up to eight per core), and objects parsed
/// and planned on the helper threads of a large load stay there, half-empty,
/// so the resident size stays well above the live heap; two arenas keep the
/// parallel load as fast and the heap compact.
pub const MALLOC_ARENAS: i32 = 2;

/// Caps the allocator's arenas at [`MALLOC_ARENAS`]; called once at start,
/// before any thread is spawned.
#[allow(unsafe_code)]
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // the agent starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}
