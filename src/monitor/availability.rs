//! Availability, from the state machine's decisions: the share of the observed time a server
//! spent outside `down` and `auth_failed`, that is, outside its incidents. One definition for
//! the bars, the uptime figures, the badges, `/status.json` and the API, so a failed probe that
//! changed nothing (below `failures_to_down`) never shows as an outage anywhere. Raw probe
//! success ratios stay available under their own name.

/// An outage as the state machine recorded it: opened, and closed (or still open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub opened_at: i64,
    pub closed_at: Option<i64>,
}

/// Availability over `[from, to)` (Unix ms), counting only time after `observed_since` and
/// before `now`; `None` when none of the window was observed.
pub fn availability(
    outages: &[Outage],
    observed_since: i64,
    from: i64,
    to: i64,
    now: i64,
) -> Option<f64> {
    let start = from.max(observed_since);
    let end = to.min(now);
    if end <= start {
        return None;
    }
    let down: i64 = outages
        .iter()
        .map(|o| {
            let o_end = o.closed_at.unwrap_or(now).min(end);
            (o_end - o.opened_at.max(start)).max(0)
        })
        .sum();
    let observed = end - start;
    Some(1.0 - down.min(observed) as f64 / observed as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn time_in_outages_over_observed_time() {
        let outages = [
            Outage {
                opened_at: 2 * H,
                closed_at: Some(3 * H),
            },
            Outage {
                opened_at: 20 * H,
                closed_at: None,
            },
        ];
        // A day observed from its start, an hour down: 23/24.
        assert_eq!(
            availability(&outages[..1], 0, 0, 24 * H, 30 * H),
            Some(23.0 / 24.0)
        );
        // The open outage counts until now.
        let a = availability(&outages, 0, 0, 24 * H, 22 * H).unwrap();
        assert!((a - 19.0 / 22.0).abs() < 1e-9, "{a}");
        // Before monitoring began nothing is known; an unobserved window has no figure.
        assert_eq!(availability(&outages, 12 * H, 0, 24 * H, 14 * H), Some(1.0));
        assert_eq!(availability(&outages, 30 * H, 0, 24 * H, 40 * H), None);
        // No outage at all: everything observed was available.
        assert_eq!(availability(&[], 0, 0, 24 * H, 24 * H), Some(1.0));
    }
}
