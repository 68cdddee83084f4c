//! The narrow HTTP interface token requests need, so every identity mode shares one
//! transport (the process `HttpClient` with proxy and CA settings) and tests can inject fakes.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::secret::{SecretBytes, SecretString};

/// HTTP method of a token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// IMDS and NMI.
    Get,
    /// Entra ID token endpoint.
    Post,
}

/// One token request. The form body holds secrets or assertions, hence `SecretString`.
pub struct AuthRequest {
    /// Method.
    pub method: AuthMethod,
    /// Absolute URL, already encoded (NMI's `resource` deliberately is not).
    pub url: String,
    /// Extra headers (`Metadata`, `podns`, `podname`); none of them is secret.
    pub headers: Vec<(&'static str, String)>,
    /// `application/x-www-form-urlencoded` body for POST.
    pub form: Option<SecretString>,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("form", &self.form)
            .finish()
    }
}

/// The answer. The body may hold a token, hence `SecretBytes`.
#[derive(Debug)]
pub struct AuthResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Retry-After` parsed to a duration (seconds or HTTP-date form), if present.
    pub retry_after: Option<Duration>,
    /// Body.
    pub body: SecretBytes,
}

/// Why no response arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// Connection refused/reset, DNS failure, TLS handshake, proxy CONNECT failure.
    Connect(String),
    /// The per-attempt timeout elapsed.
    Timeout,
    /// Anything else (bad URL, body read failure).
    Other(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(m) => write!(f, "connection failed: {m}"),
            Self::Timeout => f.write_str("request timed out"),
            Self::Other(m) => f.write_str(m),
        }
    }
}

/// Sends token requests. Implemented for the shared `HttpClient`, and by test fakes.
pub trait AuthTransport: Send + Sync + 'static {
    /// Sends `request`, giving up after `timeout`.
    fn send(
        &self,
        request: AuthRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<AuthResponse, TransportError>>;
}

/// `application/x-www-form-urlencoded` / query encoding, as Go's `url.Values.Encode`.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(k, &mut out);
        out.push('=');
        encode_component(v, &mut out);
    }
    out
}

fn encode_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
    }
}

/// Scheme://host[:port] of `url`, for error messages that must not echo queries.
pub(crate) fn endpoint_of(url: &str) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map(|i| i + after_scheme)
        .unwrap_or(url.len());
    url[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_matches_go_url_values() {
        assert_eq!(
            form_encode(&[
                ("scope", "https://vault.azure.net/.default"),
                ("a b", "x+y&z=~*")
            ]),
            "scope=https%3A%2F%2Fvault.azure.net%2F.default&a+b=x%2By%26z%3D~%2A"
        );
    }

    #[test]
    fn endpoint_strips_path_and_query() {
        assert_eq!(
            endpoint_of("http://169.254.169.254/metadata/identity?x=1"),
            "http://169.254.169.254"
        );
        assert_eq!(
            endpoint_of("http://localhost:2579"),
            "http://localhost:2579"
        );
    }

    #[test]
    fn request_debug_redacts_form() {
        let r = AuthRequest {
            method: AuthMethod::Post,
            url: "https://x/".into(),
            headers: vec![],
            form: Some(SecretString::from("client_secret=hunter2")),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
