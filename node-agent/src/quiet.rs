//! Logging a failure that repeats without flooding the log: while the API
//! server is away every request fails, several times a second, and a line
//! each time would bury everything else.
//!
//! [`Repeated`] lets through the first failure, then at most one line per
//! interval (with how many failures it did not log), and the recovery once.

use std::time::{Duration, Instant};

/// How often a failure that goes on is logged again.
pub const EVERY: Duration = Duration::from_secs(60);

/// The state of one repeated failure (one request kind, one watch).
#[derive(Debug, Clone)]
pub struct Repeated {
    every: Duration,
    /// When the current run of failures began.
    since: Option<Instant>,
    last_logged: Option<Instant>,
    unlogged: u64,
}

/// A failure to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// The first of a run (log "unreachable"); else a reminder.
    pub first: bool,
    /// Failures since the last line that were not logged.
    pub unlogged: u64,
    /// How long it has been failing.
    pub for_: Duration,
}

impl Default for Repeated {
    fn default() -> Self {
        Repeated::new(EVERY)
    }
}

impl Repeated {
    pub fn new(every: Duration) -> Self {
        Repeated {
            every,
            since: None,
            last_logged: None,
            unlogged: 0,
        }
    }

    /// Whether it is failing now.
    pub fn failing(&self) -> bool {
        self.since.is_some()
    }

    /// A failure at `now`: `Some` when it is to be logged.
    pub fn fail(&mut self, now: Instant) -> Option<Failing> {
        let since = *self.since.get_or_insert(now);
        let due = self
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every);
        if !due {
            self.unlogged += 1;
            return None;
        }
        let out = Failing {
            first: self.last_logged.is_none(),
            unlogged: self.unlogged,
            for_: now.saturating_duration_since(since),
        };
        self.last_logged = Some(now);
        self.unlogged = 0;
        Some(out)
    }

    /// A success at `now`: `Some(how long it failed)` when it ends a run of
    /// failures (log "reachable again" once).
    pub fn ok(&mut self, now: Instant) -> Option<Duration> {
        let since = self.since.take()?;
        self.last_logged = None;
        self.unlogged = 0;
        Some(now.saturating_duration_since(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_then_one_line_per_interval_then_the_recovery() {
        let t0 = Instant::now();
        let mut r = Repeated::new(Duration::from_secs(60));
        assert!(r.ok(t0).is_none(), "no recovery without a failure");
        let first = r.fail(t0).unwrap();
        assert!(first.first && first.unlogged == 0);
        // A failure every half second for a minute: quiet.
        let logged = (1..120)
            .filter(|i| r.fail(t0 + Duration::from_millis(500 * i)).is_some())
            .count();
        assert_eq!(logged, 0);
        let again = r.fail(t0 + Duration::from_secs(60)).unwrap();
        assert!(!again.first);
        assert_eq!(again.unlogged, 119);
        assert_eq!(again.for_, Duration::from_secs(60));
        assert!(r.failing());
        assert_eq!(
            r.ok(t0 + Duration::from_secs(61)),
            Some(Duration::from_secs(61))
        );
        assert!(!r.failing());
        assert!(r.ok(t0 + Duration::from_secs(62)).is_none(), "said once");
        // A new outage is a first failure again.
        assert!(r.fail(t0 + Duration::from_secs(63)).unwrap().first);
    }
}
