//! ChartLink's log lines (core logs through `tracing`) forwarded to the app's logger: Logcat, `os.Logger`.
//!
//! A minimal `tracing` subscriber, installed once per process by [`set_logger`]; calling it again swaps the
//! logger. Log lines never hold a token or health data (core's rule), so they are safe to forward.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::error::ChartLinkError;

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn of(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Warn,
            Level::INFO => Self::Info,
            Level::DEBUG => Self::Debug,
            Level::TRACE => Self::Trace,
        }
    }
}

/// Receives ChartLink's log lines. Called on ChartLink's threads; must not call back into the SDK.
#[uniffi::export(foreign)]
pub trait ChartLinkLogger: Send + Sync {
    fn log(&self, level: LogLevel, target: String, message: String);
}

type Sink = (Arc<dyn ChartLinkLogger>, LogLevel);

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

fn sink() -> Option<Sink> {
    SINK.read().unwrap_or_else(|e| e.into_inner()).clone()
}

struct Forward;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Forward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        sink().is_some_and(|(_, max)| LogLevel::of(metadata.level()) <= max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not forwarded; every span shares one id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some((logger, max)) = sink() else {
            return;
        };
        let level = LogLevel::of(event.metadata().level());
        if level > max {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let target = event.metadata().target().to_owned();
        // A logger that throws loses the line, nothing else.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            logger.log(level, target, message.0)
        }));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Sends ChartLink's log lines up to `max_level` to `logger` (process-wide; a second call replaces the logger).
/// Fails with `InvalidInput` when another `tracing` subscriber already owns the process.
#[uniffi::export]
pub fn set_logger(
    logger: Arc<dyn ChartLinkLogger>,
    max_level: LogLevel,
) -> Result<(), ChartLinkError> {
    crate::runtime::guard(|| {
        static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let installed =
            *INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(Forward).is_ok());
        if !installed {
            return Err(ChartLinkError::InvalidInput(
                "another tracing subscriber is installed in this process".into(),
            ));
        }
        *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some((logger, max_level));
        // `enabled` answers change with the level: make tracing ask again.
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    })
}
