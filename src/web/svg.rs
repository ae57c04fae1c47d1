//! Inline SVG, drawn on the server: the 90-day bars, latency sparklines and charts (as numbers
//! the templates place), and shields-style badges (whole documents).

use super::words;

/// One day of the 90-day bar strip.
#[derive(Debug, Clone)]
pub struct Bar {
    pub x: u32,
    /// Top of the bar: days with downtime are drawn shorter, so the strip reads without colour.
    pub y: u32,
    pub height: u32,
    /// `ok`, `minor`, `partial`, `major` or `nodata`.
    pub class: &'static str,
    /// Tooltip: "2026-11-23 · 99.95 % · 1 incident".
    pub title: String,
}

pub const BAR_WIDTH: u32 = 6;
pub const BAR_GAP: u32 = 2;
pub const BAR_HEIGHT: u32 = 34;

/// One day of a server's history, as the bars draw it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Day {
    pub start: i64,
    /// Availability (time outside incidents), if the day was watched.
    pub uptime: Option<f64>,
    /// Incidents open that day.
    pub incidents: usize,
    /// Time spent degraded (correct but slow, or with warnings).
    pub degraded_ms: i64,
    /// Probes that failed without changing the state (shown in the tooltip only).
    pub failed_probes: i64,
}

/// Bars for `days`, oldest first. Colour follows the state machine: red and amber only for
/// time down (by availability) or degraded (amber); failed probes that changed nothing are a
/// neutral note in the tooltip.
pub fn bars(days: &[Day]) -> Vec<Bar> {
    days.iter()
        .enumerate()
        .map(|(i, d)| {
            let class = match d.uptime {
                None => "nodata",
                Some(u) if u < 0.95 => "major",
                Some(u) if u < 0.99 => "partial",
                Some(_) if d.degraded_ms > 0 => "partial",
                Some(u) if u < 0.999 => "minor",
                Some(_) => "ok",
            };
            // Full height at 100 %, 40 % of it at 90 % uptime or less.
            let scale = d
                .uptime
                .map_or(1.0, |u| 0.4 + 0.6 * ((u - 0.9) / 0.1).clamp(0.0, 1.0));
            let height = ((f64::from(BAR_HEIGHT) * scale).round() as u32).max(4);
            let mut title = format!(
                "{} · {} · {}",
                words::date(d.start),
                d.uptime.map_or("no data".to_string(), words::percent),
                match d.incidents {
                    0 => "no incidents".to_string(),
                    1 => "1 incident".to_string(),
                    n => format!("{n} incidents"),
                }
            );
            if d.degraded_ms > 0 {
                title.push_str(&format!(" · degraded {}", words::duration(d.degraded_ms)));
            }
            if d.failed_probes > 0 && d.incidents == 0 {
                let s = if d.failed_probes == 1 { "" } else { "s" };
                title.push_str(&format!(
                    " · {} failed probe{s}, no outage",
                    d.failed_probes
                ));
            }
            Bar {
                x: i as u32 * (BAR_WIDTH + BAR_GAP),
                y: BAR_HEIGHT - height,
                height,
                class,
                title,
            }
        })
        .collect()
}

/// Width of a strip of `n` bars.
pub fn bars_width(n: usize) -> u32 {
    (n as u32 * (BAR_WIDTH + BAR_GAP)).saturating_sub(BAR_GAP)
}

/// A polyline's `points` for `values` spread over `width` × `height` (missing values break
/// nothing: they are skipped), scaled to `y_max`.
pub fn points(values: &[Option<f64>], width: f64, height: f64, y_max: f64) -> String {
    let n = values.len().max(2) - 1;
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let x = width * i as f64 / n as f64;
            let y = height - (v / y_max).clamp(0.0, 1.0) * (height - 2.0) - 1.0;
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{x:.1},{y:.1}"));
        }
    }
    out
}

/// A latency chart: p50 as a solid line, p95 dashed (told apart by shape, not only colour).
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: &'static str,
    pub p50: String,
    pub p95: String,
    pub y_max: String,
    pub from: String,
    pub to: String,
    pub empty: bool,
}

pub const CHART_W: f64 = 600.0;
pub const CHART_H: f64 = 120.0;

/// Build a chart from (p50, p95) per slot, oldest first.
pub fn chart(
    title: &'static str,
    slots: &[(Option<f64>, Option<f64>)],
    from: String,
    to: String,
) -> Chart {
    let max = slots
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .flatten()
        .fold(0.0_f64, f64::max);
    // Headroom above the highest point, so a flat line does not sit on the frame.
    let y_max = nice_ceiling(max * 1.15);
    let p50: Vec<_> = slots.iter().map(|s| s.0).collect();
    let p95: Vec<_> = slots.iter().map(|s| s.1).collect();
    Chart {
        title,
        p50: points(&p50, CHART_W, CHART_H, y_max),
        p95: points(&p95, CHART_W, CHART_H, y_max),
        y_max: words::latency(y_max),
        from,
        to,
        empty: max == 0.0,
    }
}

/// 1, 2 or 5 × a power of ten at or above `v` (axis tops that read well).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Approximate text width in Verdana 11 px, the badge font (wide glyphs count more).
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ' ' | '|' | '!' | '\'' => 4,
            'm' | 'w' | 'M' | 'W' | '%' => 10,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 7,
            _ => 7,
        })
        .sum()
}

/// A shields-style badge: grey label, coloured value. `color` is a CSS hex colour we chose.
pub fn badge(label: &str, value: &str, color: &str) -> String {
    let (lw, vw) = (text_width(label) + 10, text_width(value) + 10);
    let w = lw + vw;
    let (label, value) = (xml_escape(label), xml_escape(value));
    let lx = lw * 5; // centre, in the 10× text coordinate space below
    let vx = (lw + vw / 2) * 10;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text x="{lx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{label}</text><text x="{lx}" y="140" transform="scale(.1)">{label}</text><text x="{vx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{value}</text><text x="{vx}" y="140" transform="scale(.1)">{value}</text></g></svg>"##
    )
}

/// The badge colour of a state key.
pub fn state_color(key: &str) -> &'static str {
    match key {
        "up" => "#2e7d32",
        "degraded" => "#b26a00",
        "down" => "#c62828",
        "auth_failed" => "#ad1457",
        "maintenance" => "#1565c0",
        _ => "#6b6b6b",
    }
}

/// The badge colour of an uptime ratio.
pub fn uptime_color(ratio: Option<f64>) -> &'static str {
    match ratio {
        None => "#6b6b6b",
        Some(u) if u >= 0.999 => "#2e7d32",
        Some(u) if u >= 0.99 => "#558b2f",
        Some(u) if u >= 0.95 => "#b26a00",
        Some(_) => "#c62828",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_get_shorter_and_change_class_with_downtime() {
        let day = |start, uptime, incidents| Day {
            start,
            uptime,
            incidents,
            ..Day::default()
        };
        let b = bars(&[
            day(0, Some(1.0), 0),
            day(86_400_000, Some(0.97), 2),
            day(172_800_000, None, 0),
        ]);
        assert_eq!((b[0].class, b[0].height, b[0].y), ("ok", BAR_HEIGHT, 0));
        assert_eq!(b[1].class, "partial");
        assert!(b[1].height < BAR_HEIGHT);
        assert_eq!(b[1].title, "1970-01-02 · 97.0 % · 2 incidents");
        assert_eq!(b[2].class, "nodata");
        assert_eq!(b[2].x, 2 * (BAR_WIDTH + BAR_GAP));
    }

    #[test]
    fn degraded_time_is_amber_and_ignored_failures_are_a_neutral_note() {
        let b = bars(&[
            Day {
                uptime: Some(1.0),
                degraded_ms: 2 * 3_600_000,
                ..Day::default()
            },
            Day {
                uptime: Some(1.0),
                failed_probes: 3,
                ..Day::default()
            },
        ]);
        assert_eq!(b[0].class, "partial", "amber for time degraded");
        assert!(b[0].title.contains("degraded 2 h"), "{}", b[0].title);
        assert_eq!(
            b[1].class, "ok",
            "failed probes that changed nothing are not an outage"
        );
        assert_eq!(b[1].height, BAR_HEIGHT);
        assert!(
            b[1].title.ends_with("3 failed probes, no outage"),
            "{}",
            b[1].title
        );
    }

    #[test]
    fn points_skip_gaps_and_scale_to_the_top() {
        let p = points(&[Some(0.0), None, Some(10.0)], 100.0, 20.0, 10.0);
        assert_eq!(p, "0.0,19.0 100.0,1.0");
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn badges_escape_their_text() {
        let svg = badge("mcp", "<up>", "#2e7d32");
        assert!(svg.contains("&lt;up&gt;") && !svg.contains("<up>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
