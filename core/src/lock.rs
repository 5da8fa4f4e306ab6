//! Idle lockout. The portal logs a patient out after 10 minutes idle in the mobile app and 20 on the web; HIPAA
//! asks for automatic logoff. Here, locked means the data cannot be read: the SDK drops the store key and the
//! tokens from memory when the lock fires (see [`crate::ChartLink`]); this module only decides *when*.
//!
//! Time comes from the injected [`Clock`]. Idle time is the larger of the monotonic clock's delta (it keeps counting
//! while the device sleeps) and the wall clock's delta: setting the wall clock back never extends a session, and a
//! jump forward locks. The host reports activity, background and foreground; the SDK calls [`IdleLock::tick`]
//! (on every call and once a second) and forwards the events.

use std::sync::{Arc, Mutex};

use crate::host::Clock;

/// Why the store locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockReason {
    /// No activity for the timeout.
    Idle,
    /// The app stayed in the background longer than the grace period.
    Background,
    /// The user or the app locked it.
    Explicit,
}

/// Something the app should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEvent {
    /// The lock fires in `remaining_ms` unless the user does something.
    Warning {
        remaining_ms: i64,
    },
    Locked(LockReason),
    Unlocked,
}

/// Lock settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// Idle time before locking: 10 minutes by default (mobile); use [`LockConfig::desktop`] for 20.
    pub timeout_ms: i64,
    /// Warn this long before the idle lock fires (`None`: no warning).
    pub warning_ms: Option<i64>,
    /// Lock after this long in the background (0: at once).
    pub background_grace_ms: i64,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 10 * 60_000,
            warning_ms: Some(60_000),
            background_grace_ms: 30_000,
        }
    }
}

impl LockConfig {
    /// The portal's web and desktop timeout: 20 minutes.
    pub fn desktop() -> Self {
        Self {
            timeout_ms: 20 * 60_000,
            ..Self::default()
        }
    }
}

#[derive(Debug)]
struct State {
    last_mono: i64,
    last_wall: i64,
    background_since: Option<(i64, i64)>,
    locked: Option<LockReason>,
    warned: bool,
}

/// The idle lock.
pub struct IdleLock {
    config: LockConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for IdleLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleLock")
            .field("config", &self.config)
            .field("locked", &self.locked())
            .finish()
    }
}

impl IdleLock {
    /// A lock that starts unlocked, with the idle timer starting now.
    pub fn new(config: LockConfig, clock: Arc<dyn Clock>) -> Self {
        let state = State {
            last_mono: clock.monotonic_ms(),
            last_wall: clock.now_unix_ms(),
            background_since: None,
            locked: None,
            warned: false,
        };
        Self {
            config,
            clock,
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings.
    pub fn config(&self) -> LockConfig {
        self.config
    }

    /// Why it is locked, if it is.
    pub fn locked(&self) -> Option<LockReason> {
        self.state().locked
    }

    /// Whether the app is in the background (reported, and not back yet).
    pub fn in_background(&self) -> bool {
        self.state().background_since.is_some()
    }

    /// Time elapsed since `(mono, wall)`, by the larger of the two clocks (a wall clock set back counts as zero).
    fn elapsed(&self, mono: i64, wall: i64) -> i64 {
        let dm = self.clock.monotonic_ms() - mono;
        let dw = self.clock.now_unix_ms() - wall;
        dm.max(dw).max(0)
    }

    /// The user did something: the idle timer restarts (no effect while locked).
    pub fn activity(&self) -> Vec<LockEvent> {
        let mut events = self.tick();
        let mut s = self.state();
        if s.locked.is_none() {
            s.last_mono = self.clock.monotonic_ms();
            s.last_wall = self.clock.now_unix_ms();
            s.warned = false;
        }
        drop(s);
        events.retain(|e| !matches!(e, LockEvent::Warning { .. }));
        events
    }

    /// The app went to the background.
    pub fn background(&self) -> Vec<LockEvent> {
        let events = self.tick();
        let mut s = self.state();
        if s.background_since.is_none() {
            s.background_since = Some((self.clock.monotonic_ms(), self.clock.now_unix_ms()));
        }
        let immediate = self.config.background_grace_ms <= 0 && s.locked.is_none();
        drop(s);
        if immediate {
            [events, self.lock(LockReason::Background)].concat()
        } else {
            events
        }
    }

    /// The app came back to the foreground: locks if it stayed away past the grace period (or idle past the timeout).
    pub fn foreground(&self) -> Vec<LockEvent> {
        let events = self.tick();
        self.state().background_since = None;
        events
    }

    /// Locks now.
    pub fn lock(&self, reason: LockReason) -> Vec<LockEvent> {
        let mut s = self.state();
        if s.locked.is_some() {
            return Vec::new();
        }
        s.locked = Some(reason);
        vec![LockEvent::Locked(reason)]
    }

    /// Unlocks (after the host's own check, e.g. biometrics) and restarts the idle timer.
    pub fn unlock(&self) -> Vec<LockEvent> {
        let mut s = self.state();
        if s.locked.is_none() {
            return Vec::new();
        }
        s.locked = None;
        s.warned = false;
        s.last_mono = self.clock.monotonic_ms();
        s.last_wall = self.clock.now_unix_ms();
        if s.background_since.is_some() {
            s.background_since = Some((s.last_mono, s.last_wall));
        }
        vec![LockEvent::Unlocked]
    }

    /// Evaluates the timers: the warning, the idle lock, the background lock.
    pub fn tick(&self) -> Vec<LockEvent> {
        let mut s = self.state();
        if s.locked.is_some() {
            return Vec::new();
        }
        if let Some((mono, wall)) = s.background_since
            && self.elapsed(mono, wall) >= self.config.background_grace_ms
        {
            s.locked = Some(LockReason::Background);
            return vec![LockEvent::Locked(LockReason::Background)];
        }
        let idle = self.elapsed(s.last_mono, s.last_wall);
        if idle >= self.config.timeout_ms {
            s.locked = Some(LockReason::Idle);
            return vec![LockEvent::Locked(LockReason::Idle)];
        }
        if let Some(w) = self.config.warning_ms
            && !s.warned
            && idle >= self.config.timeout_ms - w
        {
            s.warned = true;
            return vec![LockEvent::Warning {
                remaining_ms: self.config.timeout_ms - idle,
            }];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ManualClock;

    const MIN: i64 = 60_000;

    fn lock() -> (IdleLock, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (IdleLock::new(LockConfig::default(), clock.clone()), clock)
    }

    #[test]
    fn warns_then_locks_after_ten_idle_minutes() {
        let (l, c) = lock();
        c.advance_ms(8 * MIN);
        assert!(l.tick().is_empty());
        c.advance_ms(MIN + 1);
        assert_eq!(
            l.tick(),
            vec![LockEvent::Warning {
                remaining_ms: MIN - 1
            }]
        );
        assert!(l.tick().is_empty(), "one warning");
        c.advance_ms(MIN);
        assert_eq!(l.tick(), vec![LockEvent::Locked(LockReason::Idle)]);
        assert_eq!(l.locked(), Some(LockReason::Idle));
        assert!(l.tick().is_empty());
    }

    #[test]
    fn activity_restarts_the_timer_and_clears_the_warning() {
        let (l, c) = lock();
        c.advance_ms(9 * MIN + 30_000);
        assert!(matches!(l.tick()[..], [LockEvent::Warning { .. }]));
        assert!(l.activity().is_empty());
        c.advance_ms(8 * MIN + 30_000);
        assert!(
            l.tick().is_empty(),
            "8.5 minutes after the activity: no warning yet"
        );
        c.advance_ms(30_000);
        assert!(
            matches!(l.tick()[..], [LockEvent::Warning { .. }]),
            "the warning comes again"
        );
    }

    #[test]
    fn activity_after_the_timeout_locks_rather_than_extends() {
        let (l, c) = lock();
        c.advance_ms(11 * MIN);
        assert_eq!(l.activity(), vec![LockEvent::Locked(LockReason::Idle)]);
        assert_eq!(l.locked(), Some(LockReason::Idle));
    }

    #[test]
    fn time_asleep_counts() {
        let (l, c) = lock();
        // The device sleeps for 15 minutes: the monotonic (boot) clock keeps counting.
        c.advance_ms(15 * MIN);
        assert_eq!(l.tick(), vec![LockEvent::Locked(LockReason::Idle)]);
    }

    #[test]
    fn setting_the_wall_clock_back_does_not_extend_the_session() {
        let (l, c) = lock();
        c.advance_ms(5 * MIN);
        c.set_wall_ms(c.now_unix_ms() - 3600 * 1000);
        c.advance_ms(5 * MIN);
        assert_eq!(l.tick(), vec![LockEvent::Locked(LockReason::Idle)]);
    }

    #[test]
    fn a_forward_jump_of_the_wall_clock_locks() {
        let (l, c) = lock();
        c.set_wall_ms(c.now_unix_ms() + 2 * 3600 * 1000);
        assert_eq!(l.tick(), vec![LockEvent::Locked(LockReason::Idle)]);
    }

    #[test]
    fn background_locks_after_the_grace_period() {
        let (l, c) = lock();
        assert!(l.background().is_empty());
        c.advance_ms(20_000);
        assert!(l.foreground().is_empty(), "back within the grace period");
        assert!(l.background().is_empty());
        c.advance_ms(31_000);
        assert_eq!(l.tick(), vec![LockEvent::Locked(LockReason::Background)]);
        assert!(l.foreground().is_empty(), "already locked");
        assert_eq!(l.locked(), Some(LockReason::Background));
    }

    #[test]
    fn background_with_no_grace_locks_at_once_and_coming_back_late_locks() {
        let clock = Arc::new(ManualClock::new());
        let l = IdleLock::new(
            LockConfig {
                background_grace_ms: 0,
                ..LockConfig::default()
            },
            clock.clone(),
        );
        assert_eq!(
            l.background(),
            vec![LockEvent::Locked(LockReason::Background)]
        );
        let (l, c) = lock();
        l.background();
        c.advance_ms(5 * MIN);
        // No tick ran while in the background (the app was suspended): coming back evaluates the timers.
        assert_eq!(
            l.foreground(),
            vec![LockEvent::Locked(LockReason::Background)]
        );
    }

    #[test]
    fn explicit_lock_and_unlock() {
        let (l, c) = lock();
        assert_eq!(
            l.lock(LockReason::Explicit),
            vec![LockEvent::Locked(LockReason::Explicit)]
        );
        assert!(l.lock(LockReason::Idle).is_empty(), "already locked");
        assert_eq!(l.unlock(), vec![LockEvent::Unlocked]);
        assert!(l.unlock().is_empty());
        c.advance_ms(9 * MIN + 59_000);
        assert!(
            !matches!(l.tick()[..], [LockEvent::Locked(_)]),
            "the timer restarted at unlock"
        );
    }

    #[test]
    fn desktop_hosts_wait_twenty_minutes() {
        let clock = Arc::new(ManualClock::new());
        let l = IdleLock::new(LockConfig::desktop(), clock.clone());
        clock.advance_ms(15 * MIN);
        assert!(l.tick().iter().all(|e| !matches!(e, LockEvent::Locked(_))));
        clock.advance_ms(5 * MIN);
        assert_eq!(l.tick(), vec![LockEvent::Locked(LockReason::Idle)]);
    }
}
