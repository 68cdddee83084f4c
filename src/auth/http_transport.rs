//! [`AuthTransport`] over the shared [`HttpClient`], so proxies, `--ca-bundle` and the
//! user agent apply to Entra ID, IMDS and NMI requests.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use super::transport::{AuthMethod, AuthRequest, AuthResponse, AuthTransport, TransportError};
use crate::http::{HttpClient, TransportFailure, classify_transport_error};
use crate::secret::SecretBytes;

/// Token responses are small; anything bigger is not a token response.
const MAX_TOKEN_RESPONSE_BYTES: usize = 1024 * 1024;

impl AuthTransport for HttpClient {
    fn send(
        &self,
        request: AuthRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<AuthResponse, TransportError>> {
        Box::pin(send_with_host(self.client(), request, timeout, None))
    }
}

/// Sends `request` with a plain `reqwest::Client` (also used for the token-proxy transport,
/// which passes the `Host` header to keep).
pub(crate) async fn send_with_host(
    client: &reqwest::Client,
    request: AuthRequest,
    timeout: Duration,
    host: Option<(reqwest::header::HeaderName, HeaderValue)>,
) -> Result<AuthResponse, TransportError> {
    let method = match request.method {
        AuthMethod::Get => reqwest::Method::GET,
        AuthMethod::Post => reqwest::Method::POST,
    };
    let mut builder = client.request(method, &request.url).timeout(timeout);
    if let Some((name, value)) = host {
        builder = builder.header(name, value);
    }
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    if let Some(form) = request.form {
        builder = builder
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(form.expose().to_owned());
    }
    let mut resp = builder.send().await.map_err(|e| map_err(&e))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let mut body = SecretBytes::default();
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| map_err(&e))? {
        if buf.len() + chunk.len() > MAX_TOKEN_RESPONSE_BYTES {
            return Err(TransportError::Other(format!(
                "token response larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    if !buf.is_empty() {
        body = SecretBytes::new(buf);
    }
    Ok(AuthResponse {
        status,
        retry_after,
        body,
    })
}

fn map_err(e: &reqwest::Error) -> TransportError {
    // The innermost cause says what happened (refused, certificate unknown, ...); the
    // URL is left out because callers name the endpoint themselves.
    let mut detail = e.without_url_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    match classify_transport_error(e) {
        TransportFailure::Timeout => TransportError::Timeout,
        TransportFailure::Dns => TransportError::Connect(format!("DNS lookup failed: {detail}")),
        TransportFailure::Tls => TransportError::Connect(format!("TLS handshake failed: {detail}")),
        TransportFailure::Connect => TransportError::Connect(detail),
        TransportFailure::Broken => TransportError::Connect(format!("connection broken: {detail}")),
        TransportFailure::Other => TransportError::Other(detail),
    }
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        if self.is_connect() {
            "connection failed".to_owned()
        } else {
            "request failed".to_owned()
        }
    }
}

/// `Retry-After` in seconds or HTTP-date form.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
