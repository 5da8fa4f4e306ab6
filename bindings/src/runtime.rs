//! The one tokio runtime every async call and timer of the SDK runs on, and the two wrappers that keep panics on
//! the Rust side of the boundary.
//!
//! Async exports hand their work to this runtime with [`run`] and await the task from whatever executor the
//! foreign side polls with (Kotlin coroutines, Swift tasks): the HTTP stack, timers and the idle timer all live on
//! the runtime's two worker threads, a panic in the task surfaces as [`ChartLinkError::Internal`], and cancelling
//! the Kotlin coroutine or Swift task (which drops the future) aborts the task. Synchronous exports go through
//! [`guard`], which turns a panic into the same error.
//!
//! Why not `#[uniffi::export(async_runtime = "tokio")]`: it polls each future on the foreign thread inside
//! async-compat's own runtime, which would be a second runtime beside the one the idle timer needs, and a panic
//! there reaches the app as uniffi's untyped internal error instead of `ChartLinkError.Internal`.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::runtime::{Builder, Runtime};
use tokio::task::AbortHandle;

use crate::cancel::CancelToken;
use crate::error::ChartLinkError;

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

/// The SDK's runtime, started on first use.
pub(crate) fn runtime() -> Result<&'static Runtime, ChartLinkError> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("chartlink")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| ChartLinkError::Internal("could not start the async runtime".into()))
}

/// Runs blocking `work` on the SDK's runtime without waiting for it (work a synchronous export hands off so that it
/// returns at once). A panic in `work` stays in its task: logged, never across the boundary. Without a runtime
/// (it could not start) the work runs here, as it did before.
pub(crate) fn spawn_blocking_detached(work: impl FnOnce() + Send + 'static) {
    let contained = move || {
        if catch_unwind(AssertUnwindSafe(work)).is_err() {
            tracing::error!(target: "chartlink", "a background task of the SDK panicked");
        }
    };
    match runtime() {
        Ok(rt) => {
            rt.spawn_blocking(contained);
        }
        Err(_) => contained(),
    }
}

/// Aborts a task when dropped (the foreign side cancelled the call) unless it already finished.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` on the SDK's runtime and waits for it. A panic in `work` becomes [`ChartLinkError::Internal`];
/// dropping the returned future (a cancelled coroutine or task) aborts `work` at its next await point.
#[cfg(any(test, feature = "test-support"))]
pub(crate) async fn run<T, F>(work: F) -> Result<T, ChartLinkError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ChartLinkError>> + Send + 'static,
{
    run_cancellable(None, work).await
}

/// [`run`], also aborted by `cancel` (the Swift shell's path: see [`CancelToken`]). An aborted task answers
/// [`ChartLinkError::Cancelled`].
pub(crate) async fn run_cancellable<T, F>(
    cancel: Option<Arc<CancelToken>>,
    work: F,
) -> Result<T, ChartLinkError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ChartLinkError>> + Send + 'static,
{
    let erased: ErasedWork = Box::pin(async move { work.await.map(|t| Box::new(t) as Answer) });
    downcast(run_erased(cancel, erased).await)
}

/// What a call answers, its type erased: tokio's task machinery (its harness, about 7 KB of library per task type)
/// is then built once for every async call instead of once per call, and the calls' own code is all that differs.
type Answer = Box<dyn std::any::Any + Send>;
type ErasedWork = std::pin::Pin<Box<dyn Future<Output = Result<Answer, ChartLinkError>> + Send>>;
type ErasedBlocking = Box<dyn FnOnce() -> Result<Answer, ChartLinkError> + Send>;

/// The answer back at its type. The erased value is always the `T` it was boxed from; a mismatch would be a bug
/// here, reported as `Internal` rather than a panic.
fn downcast<T: 'static>(answer: Result<Answer, ChartLinkError>) -> Result<T, ChartLinkError> {
    answer?
        .downcast::<T>()
        .map(|t| *t)
        .map_err(|_| ChartLinkError::Internal("an async call answered the wrong type".into()))
}

async fn run_erased(
    cancel: Option<Arc<CancelToken>>,
    work: ErasedWork,
) -> Result<Answer, ChartLinkError> {
    let task = runtime()?.spawn(work);
    let _abort_if_dropped = AbortOnDrop(task.abort_handle());
    if let Some(token) = cancel {
        token.register(task.abort_handle());
    }
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ChartLinkError::panicked()),
        Err(_) => Err(ChartLinkError::Cancelled),
    }
}

/// Runs a blocking call (SQLite and decryption, a secure-store read that may show a biometric prompt) on the
/// runtime's blocking pool, never on the caller's thread, and waits for it without blocking the caller. A panic
/// becomes [`ChartLinkError::Internal`]. Dropping the future stops waiting; a call already running finishes on
/// its pool thread (a SQLite read cannot be interrupted) and its result is dropped.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, ChartLinkError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ChartLinkError> + Send + 'static,
{
    let erased: ErasedBlocking = Box::new(move || work().map(|t| Box::new(t) as Answer));
    downcast(run_blocking_erased(erased).await)
}

async fn run_blocking_erased(work: ErasedBlocking) -> Result<Answer, ChartLinkError> {
    let task = runtime()?.spawn_blocking(work);
    let _abort_if_dropped = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ChartLinkError::panicked()),
        Err(_) => Err(ChartLinkError::Cancelled),
    }
}

/// Runs a synchronous call, turning a panic into [`ChartLinkError::Internal`].
pub(crate) fn guard<T>(
    call: impl FnOnce() -> Result<T, ChartLinkError>,
) -> Result<T, ChartLinkError> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| Err(ChartLinkError::panicked()))
}

/// Runs a call that cannot report an error to the app (lifecycle inputs); a panic is logged and dropped, and
/// `fallback` is returned.
pub(crate) fn guard_or<T>(fallback: T, call: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| {
        tracing::error!(target: "chartlink", "{}", crate::error::PANIC_MESSAGE);
        fallback
    })
}

/// A running background job (the idle timer). `cancel()` stops it; so does dropping the handle (Kotlin `close()`,
/// or the Swift object going away). Cancelling twice is harmless.
#[derive(Debug, uniffi::Object)]
pub struct SubscriptionHandle {
    task: Mutex<Option<AbortHandle>>,
}

impl SubscriptionHandle {
    pub(crate) fn new(task: AbortHandle) -> Self {
        Self {
            task: Mutex::new(Some(task)),
        }
    }

    fn take(&self) -> Option<AbortHandle> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[uniffi::export]
impl SubscriptionHandle {
    /// Stops the job. It does not run again after this returns (a tick in progress completes first).
    pub fn cancel(&self) {
        if let Some(task) = self.take() {
            task.abort();
        }
    }

    /// Whether the job still runs (false after `cancel()`).
    pub fn is_active(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        // A separate current-thread runtime plays the foreign executor.
        Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_panic_in_async_work_becomes_internal() {
        let out: Result<(), _> = block_on(run(async { panic!("boom") }));
        assert_eq!(out, Err(ChartLinkError::panicked()));
        // The runtime survives it.
        assert_eq!(block_on(run(async { Ok(7) })), Ok(7));
    }

    #[test]
    fn a_panic_in_a_sync_call_becomes_internal() {
        let out: Result<(), _> = guard(|| panic!("boom"));
        assert_eq!(out, Err(ChartLinkError::panicked()));
        assert!(guard_or(true, || panic!("boom")));
    }

    #[test]
    fn dropping_the_call_aborts_the_work() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        block_on(async move {
            let call = run(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(())
            });
            // The foreign side gives up after 20 ms: the future is dropped.
            let _ = tokio::time::timeout(Duration::from_millis(20), call).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        });
        assert!(!finished.load(Ordering::SeqCst), "the aborted task ran on");
    }

    #[test]
    fn a_subscription_stops_on_cancel_and_on_drop() {
        let rt = runtime().expect("runtime");
        let spawn = || rt.spawn(std::future::pending::<()>()).abort_handle();
        let sub = SubscriptionHandle::new(spawn());
        assert!(sub.is_active());
        sub.cancel();
        sub.cancel();
        assert!(!sub.is_active());
        let task = spawn();
        drop(SubscriptionHandle::new(task.clone()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(task.is_finished());
    }

    #[test]
    fn a_cancel_token_aborts_the_work_and_answers_cancelled() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let token = CancelToken::new();
        let trigger = token.clone();
        let out = block_on(async move {
            let call = run_cancellable(Some(token), async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(())
            });
            // The foreign side keeps awaiting (Swift), and cancels through the token from another thread.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                trigger.cancel();
            });
            call.await
        });
        assert_eq!(out, Err(ChartLinkError::Cancelled));
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            !finished.load(Ordering::SeqCst),
            "the cancelled task ran on"
        );
    }

    #[test]
    fn a_call_given_a_cancelled_token_never_starts() {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let token = CancelToken::new();
        token.cancel();
        token.cancel();
        assert!(token.is_cancelled());
        let out = block_on(run_cancellable(Some(token.clone()), async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        }));
        assert_eq!(out, Err(ChartLinkError::Cancelled));
        assert!(!started.load(Ordering::SeqCst));
        // A finished call is not affected by a later cancel, and a shared token keeps no finished tasks.
        let fresh = CancelToken::new();
        for _ in 0..3 {
            assert_eq!(
                block_on(run_cancellable(Some(fresh.clone()), async { Ok(1) })),
                Ok(1)
            );
        }
        assert_eq!(
            fresh.tracked(),
            1,
            "a shared token dropped none of its finished calls"
        );
        fresh.cancel();
    }

    #[test]
    fn an_answer_comes_back_at_its_type_and_a_mismatch_is_internal() {
        assert_eq!(
            block_on(run_blocking(|| Ok(vec![1u8, 2]))),
            Ok(vec![1u8, 2])
        );
        assert_eq!(
            block_on(run(async { Ok("text".to_string()) })),
            Ok("text".into())
        );
        let wrong: Result<u8, _> = downcast(Ok(Box::new(7u32) as Answer));
        assert!(matches!(wrong, Err(ChartLinkError::Internal(_))));
        let failed: Result<u8, _> = downcast(Err(ChartLinkError::Cancelled));
        assert_eq!(failed, Err(ChartLinkError::Cancelled));
    }

    #[test]
    fn blocking_work_runs_off_the_caller_thread() {
        let caller = std::thread::current().id();
        let worker = block_on(run_blocking(|| Ok(std::thread::current().id()))).expect("ran");
        assert_ne!(caller, worker);
        let out: Result<(), _> = block_on(run_blocking(|| panic!("boom")));
        assert_eq!(out, Err(ChartLinkError::panicked()));
    }
}
