//! Service level objectives and their error budgets, from the availability the status page
//! shows (time outside `down` and `auth_failed`, [`crate::monitor::availability`]), and the
//! multi-window burn-rate alerts of the Google SRE workbook.
//!
//! - This file: the arithmetic, pure. An objective (e.g. 99.9 % over 30 days, optionally 95 %
//!   of successful probes under 800 ms), its figures at a moment (attainment, budget spent and
//!   left, burn rate over 5 min, 30 min, 1 h and 6 h), and whether an alert opens or closes.
//! - `watch.rs`: the leader's loop that evaluates every objective every 30 s, raises
//!   `slo.burning` / `slo.recovered` (with their deliveries, in one transaction, once) and
//!   sets the metrics.
//! - `report.rs`: a server's monthly report (availability, incidents, budget, latency
//!   percentiles) as JSON, CSV and a printable page.
//!
//! The budget is time: a 99.9 % objective over 30 days allows 43 min 12 s outside the
//! objective in any 30 days. Spent is the time in outages within the window; left is the share
//! of the allowance not spent (negative when overspent). A burn rate is how fast the budget
//! goes over a shorter window: 1 means it would last exactly the objective's window.

pub mod report;
pub mod watch;

use serde::Serialize;

use crate::monitor::availability::{Outage, availability};

/// The burn-rate windows, with their names as metrics and the API show them.
pub const BURN_WINDOWS: [(&str, i64); 4] = [
    ("5m", 5 * 60_000),
    ("30m", 30 * 60_000),
    ("1h", 3_600_000),
    ("6h", 6 * 3_600_000),
];

/// The workbook's page conditions for a 30-day objective: (long window, short window, rate).
/// 14.4× over 1 h (and 5 min) spends 2 % of the budget in an hour; 6× over 6 h (and 30 min),
/// 5 % in six hours. The short window makes an alert stop soon after the burning does.
pub const RULES: [(&str, &str, f64); 2] = [("1h", "5m", 14.4), ("6h", "30m", 6.0)];

/// What is promised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Objective {
    /// Availability, e.g. 0.999.
    pub availability: f64,
    /// Over this many days.
    pub window_days: i64,
    /// Optionally: this share of successful probes (e.g. 0.95)…
    pub latency_share: Option<f64>,
    /// …answer within this many ms.
    pub latency_ms: Option<f64>,
}

impl Objective {
    pub fn window_ms(&self) -> i64 {
        self.window_days * 86_400_000
    }

    /// The time a whole window may spend outside the objective, in ms.
    pub fn budget_ms(&self) -> f64 {
        (1.0 - self.availability) * self.window_ms() as f64
    }
}

/// One server's outages and since when it is watched.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    pub since: i64,
    pub outages: Vec<Outage>,
}

/// Availability of several servers together over `[from, to)`: time in outages over time
/// watched, summed over them; `None` when none was watched then.
pub fn availability_of(servers: &[Watched], from: i64, to: i64, now: i64) -> Option<f64> {
    let (mut watched, mut down) = (0.0, 0.0);
    for s in servers {
        let start = from.max(s.since);
        let span = (to.min(now) - start).max(0) as f64;
        if let Some(a) = availability(&s.outages, s.since, from, to, now) {
            watched += span;
            down += (1.0 - a) * span;
        }
    }
    (watched > 0.0).then(|| 1.0 - down / watched)
}

/// Time in outages within `[from, to)` (and before `now`), summed over the servers, in ms.
pub fn outage_ms(servers: &[Watched], from: i64, to: i64, now: i64) -> f64 {
    servers
        .iter()
        .filter_map(|s| {
            let span = (to.min(now) - from.max(s.since)).max(0) as f64;
            availability(&s.outages, s.since, from, to, now).map(|a| (1.0 - a) * span)
        })
        .sum()
}

/// An objective's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Availability over the window (time watched), `None` before anything was watched.
    pub attainment: Option<f64>,
    /// The window's allowance, in seconds (per server: a tag's objective sums them).
    pub budget_seconds: f64,
    /// Time spent in outages within the window, in seconds.
    pub spent_seconds: f64,
    /// 1 − spent / allowance: the share left (negative when overspent).
    pub budget_left: f64,
    /// Burn rate per window name (`None`: nothing watched in that window).
    pub burn: Vec<(&'static str, Option<f64>)>,
    /// The share of successful probes within the latency bound over the window.
    pub latency_attainment: Option<f64>,
}

impl Figures {
    /// The burn rate over window `name`.
    pub fn burn_rate(&self, name: &str) -> Option<f64> {
        self.burn.iter().find(|(n, _)| *n == name).and_then(|b| b.1)
    }
}

/// The figures of `objective` for `servers` at `now`; `latency` is (probes within the bound,
/// successful probes) over the window, when the objective has a latency part.
pub fn figures(
    objective: &Objective,
    servers: &[Watched],
    latency: Option<(i64, i64)>,
    now: i64,
) -> Figures {
    let from = now - objective.window_ms();
    let budget_ms = objective.budget_ms() * servers.len().max(1) as f64;
    let spent_ms = outage_ms(servers, from, now, now);
    let allowed = 1.0 - objective.availability;
    let burn = BURN_WINDOWS
        .iter()
        .map(|(name, span)| {
            let a = availability_of(servers, now - span, now, now);
            (*name, a.map(|a| (1.0 - a) / allowed))
        })
        .collect();
    Figures {
        attainment: availability_of(servers, from, now, now),
        budget_seconds: (budget_ms.round()) / 1000.0,
        spent_seconds: (spent_ms.round()) / 1000.0,
        budget_left: if budget_ms > 0.0 {
            1.0 - spent_ms / budget_ms
        } else {
            0.0
        },
        burn,
        latency_attainment: latency
            .filter(|(_, n)| *n > 0)
            .map(|(within, n)| within as f64 / n as f64),
    }
}

/// What an evaluation asks of the alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Nothing changes.
    Stay,
    /// Open: the rule that fired, e.g. "14.4× over 1h and 5m".
    Burning(String),
    /// Close: the long windows are back under their rates.
    Recovered,
}

/// Whether the alert opens (a rule's long and short windows both burn at its rate or more)
/// or closes (every rule's long window is under its rate again: one alert per episode, not one
/// per failure within it). A window with nothing watched never fires.
pub fn transition(f: &Figures, burning: bool) -> Transition {
    let at_least = |w: &str, rate: f64| f.burn_rate(w).is_some_and(|b| b >= rate);
    if !burning {
        for (long, short, rate) in RULES {
            if at_least(long, rate) && at_least(short, rate) {
                return Transition::Burning(format!("{rate}× over {long} and {short}"));
            }
        }
        return Transition::Stay;
    }
    if RULES.iter().all(|(long, _, rate)| !at_least(long, *rate)) {
        Transition::Recovered
    } else {
        Transition::Stay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const H: i64 = 60 * MIN;
    const DAY: i64 = 24 * H;

    fn objective() -> Objective {
        Objective {
            availability: 0.999,
            window_days: 30,
            latency_share: None,
            latency_ms: None,
        }
    }

    #[test]
    fn the_budget_is_time_and_burn_is_its_speed() {
        // Watched for 10 days; one 21 min 36 s outage (half the 30-day budget of 43 min 12 s)
        // ending an hour ago.
        let now = 100 * DAY;
        let s = Watched {
            since: now - 10 * DAY,
            outages: vec![Outage {
                opened_at: now - H - 1_296_000,
                closed_at: Some(now - H),
            }],
        };
        let f = figures(&objective(), std::slice::from_ref(&s), Some((95, 100)), now);
        assert!((f.budget_seconds - 2592.0).abs() < 1e-6, "{f:?}");
        assert!((f.spent_seconds - 1296.0).abs() < 1e-6);
        assert!((f.budget_left - 0.5).abs() < 1e-9);
        // 1296 s down in 10 days watched.
        let a = f.attainment.unwrap();
        assert!((a - (1.0 - 1296.0 / 864_000.0)).abs() < 1e-12, "{a}");
        // The last hour had no outage; the last 6 h had 1296 s of it: (1296/21600)/0.001 = 60.
        assert_eq!(f.burn_rate("1h"), Some(0.0));
        assert!((f.burn_rate("6h").unwrap() - 60.0).abs() < 1e-9);
        assert_eq!(f.latency_attainment, Some(0.95));
        // Two servers: the allowance doubles, the outage is the same.
        let quiet = Watched {
            since: now - 10 * DAY,
            outages: vec![],
        };
        let both = figures(&objective(), &[s, quiet], None, now);
        assert!((both.budget_left - 0.75).abs() < 1e-9);
        assert!((both.burn_rate("6h").unwrap() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn alerts_open_on_both_windows_and_close_on_the_long_ones() {
        let f = |rates: [f64; 4]| Figures {
            attainment: Some(1.0),
            budget_seconds: 1.0,
            spent_seconds: 0.0,
            budget_left: 1.0,
            burn: BURN_WINDOWS
                .iter()
                .zip(rates)
                .map(|((n, _), r)| (*n, Some(r)))
                .collect(),
            latency_attainment: None,
        };
        // [5m, 30m, 1h, 6h]
        assert_eq!(
            transition(&f([20.0, 0.0, 15.0, 0.0]), false),
            Transition::Burning("14.4× over 1h and 5m".into())
        );
        assert_eq!(
            transition(&f([0.0, 15.0, 15.0, 2.0]), false),
            Transition::Stay,
            "the short window stopped burning"
        );
        assert_eq!(
            transition(&f([0.0, 7.0, 1.0, 6.5]), false),
            Transition::Burning("6× over 6h and 30m".into())
        );
        // Open: it stays open between failures, and closes once the long windows cool down.
        assert_eq!(
            transition(&f([0.0, 0.0, 15.0, 2.0]), true),
            Transition::Stay
        );
        assert_eq!(
            transition(&f([0.0, 0.0, 14.0, 5.9]), true),
            Transition::Recovered
        );
        // Nothing watched never fires.
        let mut empty = f([0.0; 4]);
        empty.burn.iter_mut().for_each(|b| b.1 = None);
        assert_eq!(transition(&empty, false), Transition::Stay);
    }
}
