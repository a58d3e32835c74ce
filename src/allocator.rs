//! glibc malloc settings for a streaming process.
//!
//! Every batch allocates its rows anew (tens of MB) and frees the previous
//! batch's, often on another thread (sources are polled on the blocking
//! pool, queries run on the workers). With glibc's defaults the freed memory
//! goes back to the kernel (heap trimming, and large blocks as their own
//! `mmap`) and the next batch faults it in again, page by page: Nexmark q0
//! and the event generator spent a third of their CPU in the kernel that way.
//! Keeping up to 64 MB free at the top of a heap and serving blocks below
//! 32 MB from the heaps instead of `mmap` reuses those pages (BENCHMARKS.md,
//! "Old against new on an idle machine": 40% fewer page faults). The process
//! keeps its peak, which a long-running stream reaches anyway. The
//! `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_` environment variables
//! still take precedence.

/// Applies the settings (glibc on Linux; elsewhere nothing).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD: libc::c_int = 64 << 20;
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        let set = |var: &str| std::env::var_os(var).is_some();
        // SAFETY: mallopt only changes malloc's tuning parameters; it is
        // called once, at start, before any other thread exists.
        unsafe {
            if !set("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}
