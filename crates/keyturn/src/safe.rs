//! Data from AWS (secret names, tags, values, user names) is escaped before it reaches a terminal or
//! a CSV cell: whoever can name or tag a secret must not be able to clear a screen, set a
//! terminal's title or clipboard, reorder text, or plant a spreadsheet formula.

use std::borrow::Cow;

/// Characters a terminal may act on: C0 controls (newline and tab included: one cell, one line),
/// DEL, C1 controls, and the bidirectional overrides and isolates.
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as `\u{..}`.
pub fn term(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A CSV field's text, neutralised: one a spreadsheet would read as a formula (starting with `=`,
/// `+`, `-`, `@`, tab or carriage return) gets a leading `'`, as OWASP advises. Quoting is the csv
/// writer's (`render::write_csv`).
pub fn not_a_formula(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped_and_plain_text_is_kept() {
        assert_eq!(term("keyturn/app1"), "keyturn/app1");
        assert_eq!(term("naïve — ok"), "naïve — ok");
        let hostile = "x\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}gnp.exe\nnext";
        let shown = term(hostile);
        assert!(!shown.chars().any(unsafe_char), "{shown}");
        assert!(
            shown.contains("\\u{1b}") && shown.contains("\\u{202e}") && shown.contains("\\u{a}")
        );
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        let cases = [
            ("=1+1", "'=1+1"),
            ("+cmd", "'+cmd"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
            ("app1", "app1"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(not_a_formula(input), expected, "{input:?}");
        }
    }
}
