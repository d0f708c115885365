//! A string that must never reach a log line.

use std::fmt;

use subtle::ConstantTimeEq as _;

/// A secret string (password, token). `Debug` and `Display` print `[redacted]`.
///
/// There is deliberately no `PartialEq`: compare with [`Secret::ct_eq`], whose time
/// does not depend on where the bytes differ. Not zeroized on drop.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value is used (hashing, comparing, sending).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with `other`: the time depends on the lengths only, never
    /// on the content.
    #[must_use]
    pub fn ct_eq(&self, other: impl AsRef<[u8]>) -> bool {
        self.0.as_bytes().ct_eq(other.as_ref()).into()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        let s = Secret::from("hunter2");
        assert!(s.ct_eq("hunter2"));
        assert!(s.ct_eq(b"hunter2"));
        assert!(!s.ct_eq("hunter3"));
        assert!(!s.ct_eq("hunter"));
        assert!(!s.ct_eq("hunter22"));
        assert!(Secret::default().ct_eq(""));
        assert!(s.ct_eq(Secret::from("hunter2".to_string()).expose()));
    }
}
