//! The HTML report: one self-contained page (inline CSS and SVG, no script,
//! nothing fetched), viewable offline.

use super::recorder::Point;
use super::report::{number, Report};

pub fn page(r: &Report) -> String {
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>parley load {} </h1><p>target {} · started {} (Unix ms){} · <b>{}</b></p>",
        esc(&r.scenario),
        esc(&r.target),
        r.started_at,
        if r.interrupted { " · interrupted" } else { "" },
        if r.passed() { "passed" } else { "FAILED" }
    ));
    body.push_str("<h2>Summary</h2><table>");
    for f in &r.figures {
        body.push_str(&format!(
            "<tr><th>{}</th><td>{} {}</td></tr>",
            esc(&f.name),
            number(f.value),
            esc(&f.unit)
        ));
    }
    for (label, l) in [("latency", &r.latency), ("ack latency", &r.ack_latency)] {
        if let Some(l) = l {
            body.push_str(&format!(
                "<tr><th>{label} (ms)</th><td>p50 {:.2} · p90 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2} · n = {}</td></tr>",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
            ));
        }
    }
    for c in &r.checks {
        body.push_str(&format!(
            "<tr class=\"{}\"><th>check: {}</th><td>{} {}</td></tr>",
            if c.passed { "ok" } else { "bad" },
            esc(&c.name),
            if c.passed { "ok" } else { "FAILED" },
            esc(&c.detail)
        ));
    }
    body.push_str("</table>");
    let series = |f: fn(&Point) -> f64| -> Vec<(f64, f64)> {
        r.timeline.iter().map(|p| (p.t, f(p))).collect()
    };
    body.push_str("<h2>Latency over time (per second, ms)</h2>");
    body.push_str(&chart(
        &[
            ("p50", "#1f77b4", series(|p| p.p50_ms)),
            ("p99", "#d62728", series(|p| p.p99_ms)),
            ("max", "#999999", series(|p| p.max_ms)),
        ],
        "ms",
    ));
    body.push_str("<h2>Throughput (per second)</h2>");
    body.push_str(&chart(
        &[
            ("sent", "#2ca02c", series(|p| p.sent_per_sec)),
            ("acked", "#9467bd", series(|p| p.acked_per_sec)),
            ("delivered", "#ff7f0e", series(|p| p.delivered_per_sec)),
            ("errors", "#d62728", series(|p| p.errors_per_sec)),
        ],
        "/s",
    ));
    body.push_str("<h2>Connected sessions</h2>");
    body.push_str(&chart(
        &[("sessions", "#17becf", series(|p| p.connected as f64))],
        "",
    ));
    body.push_str(&format!(
        "<h2>Parameters</h2><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(&r.parameters).unwrap_or_default())
    ));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>parley load {}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(&r.scenario)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}\
table{border-collapse:collapse}th,td{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}\
th{font-weight:600}tr.bad td{color:#b00;font-weight:600}svg{width:100%;height:auto;border:1px solid #ddd}\
pre{background:#f6f6f6;padding:1em;overflow:auto}";

const W: f64 = 900.0;
const H: f64 = 280.0;
const PAD_L: f64 = 70.0;
const PAD_B: f64 = 30.0;
const PAD_T: f64 = 24.0;

/// A line chart of series sharing the x axis (seconds).
/// A named, coloured line of (seconds, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn chart(series: &[Series], unit: &str) -> String {
    let points = series.iter().flat_map(|(_, _, s)| s.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = nice(
        points
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let x = |v: f64| PAD_L + v / x_max * (W - PAD_L - 10.0);
    let y = |v: f64| H - PAD_B - v / y_max * (H - PAD_B - PAD_T);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
    );
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        svg.push_str(&format!(
            "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}{unit}</text>",
            W - 10.0,
            PAD_L - 6.0,
            y(v) + 4.0,
            number(v),
            y = y(v)
        ));
    }
    for i in 0..=5 {
        let v = x_max * i as f64 / 5.0;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0} s</text>",
            x(v),
            H - 10.0,
            v
        ));
    }
    let mut legend_x = PAD_L;
    for (name, color, s) in series {
        let path: Vec<String> = s
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b)))
            .collect();
        if !path.is_empty() {
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                path.join(" ")
            ));
        }
        svg.push_str(&format!(
            "<rect x=\"{legend_x}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"15\">{}</text>",
            legend_x + 14.0,
            esc(name)
        ));
        legend_x += 90.0;
    }
    svg.push_str("</svg>");
    svg
}

/// A round upper bound for an axis.
fn nice(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(max)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn axes_round_up() {
        assert_eq!(super::nice(0.0), 1.0);
        assert_eq!(super::nice(3.2), 5.0);
        assert_eq!(super::nice(1200.0), 2000.0);
        assert_eq!(super::esc("<a&\">"), "&lt;a&amp;&quot;&gt;");
    }
}
