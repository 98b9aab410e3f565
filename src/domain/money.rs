//! How a person reads an amount. Amounts are integers in minor units (SPEC:
//! cents of the deployment's one currency); people read major units with
//! two decimals. The chat page and the admin console format the same way
//! (`formatMoney` in web/chat.js and web/admin.js), so every place shows one
//! amount one way.

/// `1250` -> `"12.50"`, `-5` -> `"-0.05"`; no thousands separators.
pub fn major_units(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::major_units;

    #[test]
    fn minor_units_read_as_major_units_with_two_decimals() {
        assert_eq!(major_units(1250), "12.50");
        assert_eq!(major_units(5), "0.05");
        assert_eq!(major_units(100), "1.00");
        assert_eq!(major_units(0), "0.00");
        assert_eq!(major_units(-1205), "-12.05");
        assert_eq!(major_units(i64::MIN), "-92233720368547758.08");
    }
}
