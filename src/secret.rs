//! Redacting, zeroizing containers for every credential, token and fetched value.
//!
//! `Debug` and `Display` never print content, and the buffer is wiped on drop.
//! Code that needs the content calls `expose()`, which keeps every read of
//! secret material greppable.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

const REDACTED: &str = "[REDACTED]";

/// A UTF-8 secret: client secrets, access tokens, service-account tokens.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value`, taking ownership so no unredacted copy remains with the caller.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret text. Callers must not log or echo it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret holds no characters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes (safe to log: says nothing about the content).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Secret bytes: fetched Key Vault values, rendered file contents, private keys.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `value`, taking ownership.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The secret bytes. Callers must not log or echo them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Moves the bytes out, leaving this container empty. Used once, for the
    /// final copy into the protocol response, so no second copy lingers here.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl From<SecretString> for SecretBytes {
    fn from(mut value: SecretString) -> Self {
        Self(std::mem::take(&mut value.0).into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{REDACTED} ({} bytes)", self.0.len())
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_never_prints_content() {
        let s = SecretString::from("hVFkk965BuUv");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:#?}"), REDACTED);
        assert!(!format!("{:?}", Some(&s)).contains("hVFkk"));
        assert_eq!(s.expose(), "hVFkk965BuUv");
    }

    #[test]
    fn secret_bytes_never_prints_content() {
        let b = SecretBytes::from(b"top-secret".to_vec());
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("top"), "{dbg}");
        assert!(dbg.contains("10 bytes"));
        assert_eq!(format!("{b}"), REDACTED);
    }

    #[test]
    fn zeroize_clears_buffers() {
        let mut s = SecretString::from("abc");
        s.zeroize();
        assert!(s.is_empty());
        let mut b = SecretBytes::from(vec![1, 2, 3]);
        b.zeroize();
        assert!(b.is_empty());
    }

    #[test]
    fn take_moves_bytes_out() {
        let mut b = SecretBytes::from(vec![7, 8]);
        assert_eq!(b.take(), vec![7, 8]);
        assert!(b.is_empty());
    }
}
