//! One-time callback tokens: drawn from the OS's random source and compared in constant time.
//!
//! A token is what proves that a callback comes from the sandbox the gateway started, so it is
//! never weakened: when the OS cannot give 128 random bits, making a token fails rather than
//! falling back to something guessable (a hasher's 64-bit key and the clock).

use subtle::ConstantTimeEq;

/// Random bytes in a token (printed as twice as many hex digits).
const TOKEN_BYTES: usize = 16;

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The OS's random source failed.
    #[error("the operating system's random source failed ({source}); refusing to make a weaker callback token")]
    Random {
        /// What the OS said.
        #[source]
        source: getrandom::Error,
    },
}

/// A fresh one-time token: 128 bits from the OS's random source, as 32 lowercase hex digits.
pub fn new_token() -> Result<String, TokenError> {
    token_from(getrandom::fill)
}

/// A token from `fill`, the random source; a seam so the failure path is testable.
fn token_from(
    fill: impl FnOnce(&mut [u8]) -> Result<(), getrandom::Error>,
) -> Result<String, TokenError> {
    let mut buf = [0u8; TOKEN_BYTES];
    fill(&mut buf).map_err(|source| TokenError::Random { source })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `bytes` random bytes from the OS's random source, as lowercase hex: the random part of a
/// container name or a create label.
pub(crate) fn random_hex(bytes: usize) -> Result<String, TokenError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|source| TokenError::Random { source })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `given` equals `expected`, in time that does not depend on where they differ, so a
/// caller cannot learn a token byte by byte from response times. Lengths are not secret (every
/// token has the same length) and may end the comparison early.
pub(crate) fn tokens_match(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_random_bits_in_hex() {
        let a = new_token().unwrap_or_else(|e| panic!("{e}"));
        let b = new_token().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_failing_random_source_is_an_error_not_a_weaker_token() {
        let got = token_from(|_| Err(getrandom::Error::UNSUPPORTED));
        assert!(matches!(got, Err(TokenError::Random { .. })), "{got:?}");
        let shown = got.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(shown.contains("random source"), "{shown}");
    }

    #[test]
    fn comparison_needs_every_byte() {
        assert!(tokens_match("0123abcd", "0123abcd"));
        for given in ["0123abce", "1123abcd", "0123abc", "0123abcdd", ""] {
            assert!(!tokens_match("0123abcd", given), "{given}");
        }
    }
}
