//! CPU-heavy encoding (Parquet files, processor checkpoints) on a few long-lived threads.
//!
//! Why not `tokio::task::spawn_blocking`: its pool grows to a thread per concurrent blocking
//! call (file I/O included), 15 of them in `retail bench stream`, and an encode lands on
//! whichever is free. Each thread's allocator heap keeps the pages of the buffers it freed
//! (page buffers, compressed pages, the file), so every thread grew its own copy of that working
//! set and most encodes wrote into memory never touched before. On as many threads as cores the
//! same memory is reused: −10 % page faults and −8 % peak memory in `retail bench stream`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

fn pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: OnceLock<Option<rayon_core::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        match rayon_core::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("retail-encode-{i}")).build() {
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
