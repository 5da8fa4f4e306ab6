//! Cancelling a call from the app: [`CancelToken`].
//!
//! Kotlin cancels an async call by cancelling its coroutine: the generated code drops the Rust future, and
//! [`crate::runtime::run`] aborts the runtime task with it. UniFFI 0.32's Swift async has no such path (a cancelled
//! `Task` keeps awaiting the Rust future until it finishes), so the long calls take an optional `CancelToken`: the
//! Swift shell creates one per call and calls [`CancelToken::cancel`] from `withTaskCancellationHandler`. Either
//! way the Rust work is dropped at its next await point and the call fails with `ChartLinkError::Cancelled`.
//!
//! Dropping at an await point never leaves half a write: every store write of a sync (a page with its position, a
//! token rotation) is one SQLite transaction run to its end between two awaits, so a cancelled sync keeps whole
//! pages only and the next sync resumes after the last one.

use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

/// Cancels the calls it was passed to. Create one per call (or share one across calls that should stop together),
/// pass it as the call's `cancel` argument, and call [`cancel`](Self::cancel) from any thread: the Rust work stops
/// at its next await point and the call fails with `Cancelled`. Cancelling twice, or after the call finished, is
/// harmless; a call given a token that is already cancelled fails with `Cancelled` without starting.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    cancelled: bool,
    tasks: Vec<AbortHandle>,
}

impl CancelToken {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many calls it still tracks (finished ones are dropped as new ones come).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.state().tasks.len()
    }

    /// Ties a running task to the token: aborted by `cancel()`, or now if the token is already cancelled.
    pub(crate) fn register(&self, task: AbortHandle) {
        let mut state = self.state();
        if state.cancelled {
            task.abort();
            return;
        }
        // A token shared by many calls keeps only the tasks still running.
        state.tasks.retain(|t| !t.is_finished());
        state.tasks.push(task);
    }
}

#[uniffi::export]
impl CancelToken {
    /// A token that has not been cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Cancels every call given this token, now and later.
    pub fn cancel(&self) {
        let tasks = {
            let mut state = self.state();
            state.cancelled = true;
            std::mem::take(&mut state.tasks)
        };
        for task in tasks {
            task.abort();
        }
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.state().cancelled
    }
}
