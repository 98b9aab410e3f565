//! Reading the few fields the tool needs from server frames without
//! building a JSON tree: at hundreds of thousands of frames a second the
//! tool's parsing would otherwise take the CPU the server needs (both share
//! one machine). Only frames the server writes are scanned, and only for
//! fields whose values never hold an escaped quote.

/// The frame's `type`, when the frame starts the way the server writes it.
pub fn kind(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix(r#"{"type":""#)?;
    rest.get(..rest.find('"')?)
}

/// A string field's raw value (no unescaping: callers use it for ids,
/// codes and the digits the tool wrote itself).
pub fn string<'a>(frame: &'a str, key: &str) -> Option<&'a str> {
    let at = find_key(frame, key)?;
    let rest = frame[at..].strip_prefix('"')?;
    rest.get(..rest.find('"')?)
}

/// An unsigned integer field.
pub fn number(frame: &str, key: &str) -> Option<u64> {
    let at = find_key(frame, key)?;
    let rest = &frame[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The offset just past `"key":`.
fn find_key(frame: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = frame[from..].find(key) {
        let start = from + i;
        let end = start + key.len();
        if frame[..start].ends_with('"') && frame[end..].starts_with("\":") {
            return Some(end + 2);
        }
        from = end;
    }
    None
}

/// The sum over labels of one series in Prometheus text exposition.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_message_frame() {
        let f = r#"{"type":"message","conversationId":"c1","messageId":"m","seq":42,"sender":"a_seq","text":"00000000000000001234xxxx","kind":"text","sentAt":"t","traceId":"x"}"#;
        assert_eq!(kind(f), Some("message"));
        assert_eq!(number(f, "seq"), Some(42));
        assert_eq!(
            string(f, "text").map(|t| &t[..20]),
            Some("00000000000000001234")
        );
        assert_eq!(string(f, "kind"), Some("text"));
        assert_eq!(string(f, "missing"), None);
        assert_eq!(kind("{}"), None);
    }

    #[test]
    fn sums_a_series_over_labels() {
        let text = "# TYPE x counter\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3.5\nx_totals 9\ny 1\n";
        assert_eq!(metric_sum(text, "x_total"), Some(5.5));
        assert_eq!(metric_sum(text, "z"), None);
    }
}
