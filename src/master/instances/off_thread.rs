//! Blocking work (DNS lookups, fsync'd file writes) on a helper OS thread, its result
//! awaited on the master's runtime through the crate's cross-thread queue
//! ([`crate::wake::queue`]): nothing blocks the runtime.

/// Run `f` on a fresh OS thread and await its result without blocking the runtime.
/// `None` if the thread panicked or could not be started.
pub async fn off_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = crate::wake::queue::<Option<R>>(1);
    let spawned = std::thread::Builder::new()
        .name("np-master-io".into())
        .spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
            tx.post_blocking(out);
        });
    if spawned.is_err() {
        return None;
    }
    rx.recv().await.flatten()
}
