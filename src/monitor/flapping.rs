//! Flapping: a server that changes state too often is noise, not news.
//!
//! More than [`MAX_CHANGES`] state changes within [`WINDOW`] make a server flapping: one
//! `server.flapping` alert goes out and its state alerts are held (still recorded). When no
//! state change has happened for [`SETTLE`], it has settled: one `server.settled` alert with
//! its current state goes out and alerts flow again. Pure: times come in, decisions go out.

use std::collections::VecDeque;

/// State changes allowed within [`WINDOW`] before a server counts as flapping.
pub const MAX_CHANGES: usize = 5;
/// The window the changes are counted in: 30 minutes.
pub const WINDOW: i64 = 30 * 60 * 1000;
/// Quiet time after which a flapping server has settled: 15 minutes.
pub const SETTLE: i64 = 15 * 60 * 1000;

/// What to do with one state-change alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlapDecision {
    /// Send it as usual.
    Alert,
    /// This change starts flapping: send one `server.flapping`, hold this change.
    StartFlapping,
    /// Flapping: hold it (the event is still recorded).
    Hold,
}

/// Recent state changes of one server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flap {
    changes: VecDeque<i64>,
    /// When flapping began; `None` when the server is calm.
    pub since: Option<i64>,
}

impl Flap {
    /// A state change at `at`.
    pub fn on_change(&mut self, at: i64) -> FlapDecision {
        self.changes.push_back(at);
        while self.changes.front().is_some_and(|t| at - t > WINDOW) {
            self.changes.pop_front();
        }
        match self.since {
            Some(_) => FlapDecision::Hold,
            None if self.changes.len() > MAX_CHANGES => {
                self.since = Some(at);
                FlapDecision::StartFlapping
            }
            None => FlapDecision::Alert,
        }
    }

    /// Called on every result: true once, when a flapping server has been quiet for [`SETTLE`].
    pub fn settles(&mut self, now: i64) -> bool {
        let quiet = self.changes.back().is_none_or(|last| now - last >= SETTLE);
        if self.since.is_some() && quiet {
            self.since = None;
            self.changes.clear();
            return true;
        }
        false
    }

    /// Not flapping, and no change within the window left to count at `now`.
    pub fn is_calm(&self, now: i64) -> bool {
        self.since.is_none() && self.changes.back().is_none_or(|t| now - t > WINDOW)
    }

    /// Changes counted in the current window.
    pub fn recent_changes(&self) -> usize {
        self.changes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn five_changes_alert_the_sixth_starts_flapping_then_hold_until_settled() {
        let mut f = Flap::default();
        for i in 0..5 {
            assert_eq!(f.on_change(i * MIN), FlapDecision::Alert);
        }
        assert_eq!(f.on_change(5 * MIN), FlapDecision::StartFlapping);
        assert_eq!(f.on_change(6 * MIN), FlapDecision::Hold);
        assert!(!f.settles(6 * MIN + SETTLE - 1), "not quiet long enough");
        assert!(f.settles(6 * MIN + SETTLE));
        assert!(!f.settles(6 * MIN + SETTLE + MIN), "settles once");
        assert_eq!(f.on_change(30 * MIN), FlapDecision::Alert, "calm again");
    }

    #[test]
    fn changes_spread_over_more_than_the_window_never_flap() {
        let mut f = Flap::default();
        for i in 0..20 {
            assert_eq!(f.on_change(i * 7 * MIN), FlapDecision::Alert, "change {i}");
        }
        assert!(f.recent_changes() <= MAX_CHANGES);
        assert!(!f.settles(1_000 * MIN), "never flapped, nothing to settle");
    }
}
