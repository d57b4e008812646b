//! Allocator tuning for the server process (glibc only).
//!
//! glibc's malloc gives each thread that contends for the heap an arena of its
//! own, up to eight per core, and memory freed into one arena is not reused by
//! another. Seshat's allocations migrate between threads (a write decoded on
//! one tokio worker is applied on another, and `block_in_place` moves workers
//! onto fresh threads), so each arena keeps its own high-water mark: after a
//! 1M-key load every node held 186–228 bytes of RSS per key with the default,
//! 123–163 with one arena (issue 5, README "Benchmarks"). The cost, one lock
//! for every thread's allocations, is small here: the per-thread cache serves
//! most small allocations without taking it, and SET, GET and pipelined SET
//! throughput did not change in A/B runs.

/// Limits glibc malloc to one arena, unless the operator chose a limit
/// (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`).
/// Must run before the process starts threads. Other C libraries: no-op.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if !chosen {
            // SAFETY: mallopt only updates malloc's parameters; called before
            // any other thread exists, nothing allocates concurrently.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        }
    }
}
