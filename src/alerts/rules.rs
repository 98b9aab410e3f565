//! Alert rules and their state machine, pure: ok -> pending (condition
//! true) -> firing (true for `for`) -> resolved (false again) -> ok.
//!
//! A rule is one line of config (`alerts.rules`):
//! `name|series or a/b|stat|window_secs|op|threshold|for_secs|severity`,
//! e.g. `restart_storm|actor_restarts|sum|10|>|5|0|critical`. `stat` is
//! sum, avg (mean of values), max, or rate (count per second); `a/b` is the
//! ratio of two series' sums over the window.

use std::collections::VecDeque;

use serde::Serialize;

use crate::series::Point;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    Sum,
    Avg,
    Max,
    Rate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub name: String,
    /// One series, or (numerator, denominator) of a ratio.
    pub series: String,
    pub ratio_of: Option<String>,
    pub stat: Stat,
    pub window_secs: u64,
    pub above: bool,
    pub threshold: f64,
    pub for_secs: u64,
    pub severity: String,
}

impl Rule {
    pub fn parse(line: &str) -> Result<Rule, String> {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, series, stat, window, op, threshold, for_secs, severity] = f.as_slice() else {
            return Err(format!("{line:?}: expected 8 fields name|series|stat|window_secs|op|threshold|for_secs|severity"));
        };
        let known = |s: &str| crate::series::SERIES.iter().any(|(n, _)| *n == s);
        let (series, ratio_of) = match series.split_once('/') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (series.to_string(), None),
        };
        for s in std::iter::once(&series).chain(ratio_of.iter()) {
            if !known(s) {
                return Err(format!("{line:?}: unknown series {s:?}"));
            }
        }
        let stat = match *stat {
            "sum" => Stat::Sum,
            "avg" => Stat::Avg,
            "max" => Stat::Max,
            "rate" => Stat::Rate,
            other => {
                return Err(format!(
                    "{line:?}: stat {other:?} is not sum, avg, max or rate"
                ))
            }
        };
        let window_secs: u64 = window
            .parse()
            .map_err(|_| format!("{line:?}: bad window_secs"))?;
        if !(1..=crate::series::SECONDS as u64).contains(&window_secs) {
            return Err(format!("{line:?}: window_secs must be 1..=86400"));
        }
        let above = match *op {
            ">" => true,
            "<" => false,
            other => return Err(format!("{line:?}: op {other:?} is not > or <")),
        };
        Ok(Rule {
            name: name.to_string(),
            series,
            ratio_of,
            stat,
            window_secs,
            above,
            threshold: threshold
                .parse()
                .map_err(|_| format!("{line:?}: bad threshold"))?,
            for_secs: for_secs
                .parse()
                .map_err(|_| format!("{line:?}: bad for_secs"))?,
            severity: severity.to_string(),
        })
    }

    /// The rule's value over its window.
    pub fn value(&self, points: &[Point], denominator: Option<&[Point]>) -> f64 {
        let sum = |p: &[Point]| p.iter().map(|p| p.sum).sum::<f64>();
        if let Some(den) = denominator {
            let d = sum(den);
            return if d == 0.0 { 0.0 } else { sum(points) / d };
        }
        match self.stat {
            Stat::Sum => sum(points),
            Stat::Rate => {
                points.iter().map(|p| f64::from(p.count)).sum::<f64>() / self.window_secs as f64
            }
            Stat::Max => points.iter().map(|p| p.max).fold(0.0, f64::max),
            Stat::Avg => {
                let n: u32 = points.iter().map(|p| p.count).sum();
                if n == 0 {
                    0.0
                } else {
                    sum(points) / f64::from(n)
                }
            }
        }
    }

    pub fn breached(&self, value: f64) -> bool {
        if self.above {
            value > self.threshold
        } else {
            value < self.threshold
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Ok,
    Pending,
    Firing,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub from: AlertState,
    pub to: AlertState,
    pub value: f64,
    /// Unix seconds.
    pub at: u64,
}

/// Transitions kept per rule.
pub const HISTORY: usize = 100;

#[derive(Debug, Clone)]
pub struct Alert {
    pub rule: Rule,
    pub state: AlertState,
    pub value: f64,
    /// When the condition became true (pending since).
    breached_since: Option<u64>,
    pub history: VecDeque<Change>,
}

impl Alert {
    pub fn new(rule: Rule) -> Self {
        Alert {
            rule,
            state: AlertState::Ok,
            value: 0.0,
            breached_since: None,
            history: VecDeque::new(),
        }
    }

    /// One evaluation at `now` (unix seconds); returns the change, if any.
    pub fn evaluate(&mut self, value: f64, now: u64) -> Option<Change> {
        self.value = value;
        let breached = self.rule.breached(value);
        let next = match (self.state, breached) {
            (AlertState::Ok | AlertState::Resolved, true) => {
                self.breached_since = Some(now);
                if self.rule.for_secs == 0 {
                    AlertState::Firing
                } else {
                    AlertState::Pending
                }
            }
            (AlertState::Pending, true) => {
                let since = self.breached_since.unwrap_or(now);
                if now.saturating_sub(since) >= self.rule.for_secs {
                    AlertState::Firing
                } else {
                    AlertState::Pending
                }
            }
            (AlertState::Pending, false) => AlertState::Ok,
            (AlertState::Firing, true) => AlertState::Firing,
            (AlertState::Firing, false) => AlertState::Resolved,
            (AlertState::Resolved, false) => AlertState::Ok,
            (AlertState::Ok, false) => AlertState::Ok,
        };
        if next == self.state {
            return None;
        }
        let change = Change {
            from: self.state,
            to: next,
            value,
            at: now,
        };
        self.state = next;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(change.clone());
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_refuses_bad_ones() {
        let r = Rule::parse("restart_storm|actor_restarts|sum|10|>|5|0|critical").unwrap();
        assert_eq!(
            (r.stat, r.window_secs, r.threshold, r.above),
            (Stat::Sum, 10, 5.0, true)
        );
        let ratio =
            Rule::parse("error_ratio|errors/messages_committed|sum|60|>|0.1|30|warning").unwrap();
        assert_eq!(ratio.ratio_of.as_deref(), Some("messages_committed"));
        for bad in [
            "x|nope|sum|10|>|5|0|w",
            "x|errors|median|10|>|5|0|w",
            "x|errors|sum|0|>|5|0|w",
            "x|errors|sum|10|=|5|0|w",
            "too|few",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ok_pending_firing_resolved_ok() {
        let mut a = Alert::new(Rule::parse("r|errors|sum|10|>|5|3|warning").unwrap());
        assert_eq!(a.evaluate(1.0, 100), None);
        assert_eq!(
            a.evaluate(9.0, 101).map(|c| c.to),
            Some(AlertState::Pending)
        );
        assert_eq!(a.evaluate(9.0, 103), None, "not yet 3 s");
        assert_eq!(a.evaluate(9.0, 104).map(|c| c.to), Some(AlertState::Firing));
        assert_eq!(
            a.evaluate(1.0, 105).map(|c| c.to),
            Some(AlertState::Resolved)
        );
        assert_eq!(a.evaluate(1.0, 106).map(|c| c.to), Some(AlertState::Ok));
        assert_eq!(a.history.len(), 4);
        // A blip shorter than `for` never fires.
        a.evaluate(9.0, 200);
        assert_eq!(a.evaluate(1.0, 201).map(|c| c.to), Some(AlertState::Ok));
    }

    #[test]
    fn values() {
        let pts = vec![
            Point {
                t: 1,
                count: 2,
                sum: 10.0,
                min: 4.0,
                max: 6.0,
            },
            Point {
                t: 2,
                count: 1,
                sum: 20.0,
                min: 20.0,
                max: 20.0,
            },
        ];
        let rule = |s: &str| Rule::parse(&format!("r|delivery_ms|{s}|10|>|1|0|w")).unwrap();
        assert_eq!(rule("sum").value(&pts, None), 30.0);
        assert_eq!(rule("avg").value(&pts, None), 10.0);
        assert_eq!(rule("max").value(&pts, None), 20.0);
        assert_eq!(rule("rate").value(&pts, None), 0.3);
        assert_eq!(rule("sum").value(&pts, Some(&pts[1..])), 1.5);
    }
}
