//! CPU-heavy encoding (Parquet files, processor checkpoints) on a few long-lived threads.
//!
//! Why not `tokio::task::spawn_blocking`: its pool grows to a thread per concurrent blocking
//! call (file I/O included), 15 of them in `retail bench stream`, and an encode lands on
//! whichever is free. Each thread's allocator heap keeps the pages of the buffers it freed
//! (page buffers, compressed pages, the file), so every thread grew its own copy of that working
//! set and most encodes wrote into memory never touched before. On as many threads as cores the
//! same memory is reused: −10 % page faults and −8 % peak memory in `retail bench stream`.
//!
//! The threads run at a lower scheduling priority (`ENCODE_NICE`): an encode is background work
//! that may finish late, while the stream processor's ordered pass is serial and bounds the
//! throughput. At equal priority the encodes took turns with it on its core (+12 % events/s in
//! `retail bench stream` at the lower priority, alternating runs; the same idea as RocksDB's
//! `LowerThreadPoolCPUPriority` for compactions). The priority only matters under contention.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// How much nicer (Linux `nice`, up to 19) the encoding threads are than the process.
pub const ENCODE_NICE: i32 = 10;

/// Lower the calling thread's scheduling priority by `by` nice levels (Linux: the nice value
/// is per thread). Best effort: a refusal only leaves the thread at the process's priority.
pub fn lower_thread_priority(by: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = this_thread();
        let current = thread_nice(tid).unwrap_or(0);
        // SAFETY: a plain system call on the calling thread's id; no memory is passed.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, (current + by).min(19)) } != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

/// The calling thread's id (Linux), what `getpriority`/`setpriority` take for one thread.
#[cfg(target_os = "linux")]
fn this_thread() -> libc::id_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() as libc::id_t }
}

/// The nice value of thread `tid` (Linux), `None` if it cannot be read.
#[cfg(target_os = "linux")]
fn thread_nice(tid: libc::id_t) -> Option<i32> {
    // getpriority returns -1 both as a value and as an error: errno tells them apart.
    // SAFETY: errno is thread-local; getpriority takes plain integers.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid);
        (nice != -1 || *libc::__errno_location() == 0).then_some(nice)
    }
}

fn pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: OnceLock<Option<rayon_core::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let builder = rayon_core::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("retail-encode-{i}"));
        match builder.start_handler(|_| lower_thread_priority(ENCODE_NICE)).build() {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start encoding threads; encoding on tokio's blocking threads");
                None
            }
        }
    })
    .as_ref()
}

/// Run `job` on the encoding threads and wait for it without blocking the async runtime; a
/// panic in `job` resumes in the caller, as with `spawn_blocking(…).await`.
pub async fn run_cpu<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    let Some(pool) = pool() else {
        return tokio::task::spawn_blocking(job).await.unwrap_or_else(|e| resume_unwind(e.into_panic()));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        // A panic must not reach the pool (its handler aborts): it travels back instead.
        let _ = tx.send(catch_unwind(AssertUnwindSafe(job)));
    });
    match rx.await {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => resume_unwind(panic),
        // The job always sends (panics are caught) and the pool lives as long as the process.
        Err(_) => unreachable!("an encoding job ended without a result"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_returns_their_results() {
        let results = futures::future::join_all((0..16u64).map(|i| run_cpu(move || (0..=i).sum::<u64>()))).await;
        assert_eq!(results, (0..16u64).map(|i| i * (i + 1) / 2).collect::<Vec<_>>());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn encoding_threads_run_at_a_lower_priority_than_the_caller() {
        let mine = thread_nice(this_thread()).expect("own nice value");
        let theirs = run_cpu(|| thread_nice(this_thread())).await.expect("encoding thread's nice value");
        assert_eq!(theirs, (mine + ENCODE_NICE).min(19), "caller at {mine}");
        assert_eq!(thread_nice(this_thread()), Some(mine), "the caller's own priority is unchanged");
    }

    #[tokio::test]
    async fn a_panicking_job_panics_in_the_caller_and_the_threads_live_on() {
        let caught = tokio::spawn(run_cpu(|| -> u8 { panic!("bad job") })).await.unwrap_err();
        assert!(caught.is_panic());
        let msg = caught.into_panic().downcast::<&str>().map(|s| *s).unwrap_or_default();
        assert_eq!(msg, "bad job");
        // The pool still runs jobs afterwards.
        assert_eq!(run_cpu(|| 7).await, 7);
    }
}
