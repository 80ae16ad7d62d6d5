//! Engine versions, compared numerically (`20.10.24+dfsg1`, `5.6.0-dev`, `v4.3.1`).

use std::fmt;

/// `major.minor.patch`; anything after the numbers is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EngineVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch (0 when absent).
    pub patch: u32,
}

impl EngineVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        EngineVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses the leading `major.minor[.patch]`; `None` when there is no such prefix.
    pub fn parse(raw: &str) -> Option<EngineVersion> {
        let s = raw.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.splitn(3, '.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = num(parts.next()).unwrap_or(0);
        Some(EngineVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::EngineVersion as V;

    #[test]
    fn parses_real_version_strings() {
        assert_eq!(V::parse("20.10.24+dfsg1"), Some(V::new(20, 10, 24)));
        assert_eq!(V::parse("5.6.0-dev"), Some(V::new(5, 6, 0)));
        assert_eq!(V::parse("v4.3.1"), Some(V::new(4, 3, 1)));
        assert_eq!(V::parse("27.3"), Some(V::new(27, 3, 0)));
        assert_eq!(V::parse("dev"), None);
        assert_eq!(V::parse("99999999999.1"), None);
        assert!(V::new(4, 7, 0) > V::new(4, 3, 1));
    }
}
