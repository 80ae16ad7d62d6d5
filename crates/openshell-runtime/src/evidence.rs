//! Evidence: which fact led to a decision, with its value, so every answer can be checked.

use serde::Serialize;

/// Longest value shown in evidence and error messages.
const MAX_SHOWN: usize = 120;

/// One fact that a detector or the policy relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Where the fact came from, e.g. `ping.Libpod-Api-Version` or `info.OperatingSystem`.
    pub fact: String,
    /// Its value, sanitised for display.
    pub value: String,
    /// What the value tells about the runtime, in one phrase for people.
    pub meaning: String,
}

impl Evidence {
    /// Evidence from a fact path, a raw value (sanitised here) and its meaning.
    pub fn new(fact: impl Into<String>, value: &str, meaning: impl Into<String>) -> Self {
        Evidence {
            fact: fact.into(),
            value: display_value(value),
            meaning: meaning.into(),
        }
    }
}

/// Makes an engine-supplied string safe to print: control characters escaped, length capped.
/// Engines are not trusted: a label may carry newlines or terminal escapes.
pub fn display_value(raw: &str) -> String {
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::display_value;

    #[test]
    fn escapes_controls_and_caps_length() {
        assert_eq!(display_value("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let long = "x".repeat(500);
        assert_eq!(display_value(&long).chars().count(), 121);
    }
}
