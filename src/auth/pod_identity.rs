//! AAD pod identity: the NMI token request, its response and its error texts (§5.5).

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::AccessToken;
use super::entra::{NumOrString, de_secret};
use super::error::{AuthError, TokenService};
use super::transport::{AuthMethod, AuthRequest, AuthResponse};
use crate::secret::SecretString;

/// NMI listens on the node; port 2579 is a constant of aad-pod-identity.
pub const DEFAULT_NMI_ENDPOINT: &str = "http://localhost:2579";

/// Shown when NMI cannot be reached.
pub const UNREACHABLE_HINT: &str = "is aad-pod-identity NMI running on this node, and does the provider run with hostNetwork: true?";

/// NMI error bodies are plain text; keep pod events readable.
const MAX_BODY_IN_MESSAGE: usize = 512;

/// `GET <endpoint>/host/token/?resource=<resource>` with `podns` / `podname` headers.
pub(crate) fn token_request(
    endpoint: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> AuthRequest {
    AuthRequest {
        method: AuthMethod::Get,
        // The reference does not URL-encode the resource; NMI parses it as-is.
        url: format!(
            "{}/host/token/?resource={}",
            endpoint.trim_end_matches('/'),
            resource.trim_end_matches('/')
        ),
        headers: vec![
            ("podns", namespace.to_owned()),
            ("podname", name.to_owned()),
        ],
        form: None,
    }
}

#[derive(Deserialize)]
struct NmiResponse {
    token: Option<NmiToken>,
    #[serde(default)]
    clientid: String,
}

#[derive(Deserialize)]
struct NmiToken {
    #[serde(default, deserialize_with = "de_secret")]
    access_token: SecretString,
    expires_on: Option<NumOrString>,
}

fn missing_values() -> AuthError {
    AuthError::InvalidResponse {
        service: TokenService::Nmi,
        message: "nmi did not return expected values in response: token and clientid".into(),
    }
}

/// Parses a 200 answer. Returns the token and the client id NMI used.
pub(crate) fn parse_token(
    body: &[u8],
    now: SystemTime,
) -> Result<(AccessToken, String), AuthError> {
    let parsed: NmiResponse = serde_json::from_slice(body).map_err(|_| missing_values())?;
    let token = parsed.token.ok_or_else(missing_values)?;
    if token.access_token.is_empty() || parsed.clientid.is_empty() {
        return Err(missing_values());
    }
    // Unparsable expiry is treated as already expired (reference): served once, not cached.
    let expires_on = token
        .expires_on
        .as_ref()
        .and_then(NumOrString::as_i64)
        .and_then(|s| u64::try_from(s).ok())
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or(now);
    Ok((
        AccessToken {
            token: token.access_token,
            expires_on,
            obtained_at: now,
        },
        parsed.clientid,
    ))
}

/// Maps a non-200 NMI answer: the reference's text, verbatim.
pub(crate) fn map_error(resp: &AuthResponse) -> AuthError {
    let body = String::from_utf8_lossy(resp.body.expose());
    let mut body: String = body.trim().chars().take(MAX_BODY_IN_MESSAGE).collect();
    body = body.replace(['\r', '\n'], " ");
    AuthError::Rejected {
        service: TokenService::Nmi,
        status: resp.status,
        message: format!(
            "nmi response failed with status code: {}, response body: {body}",
            resp.status
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::secret::SecretBytes;

    #[test]
    fn request_shape_keeps_resource_unencoded() {
        let r = token_request(
            DEFAULT_NMI_ENDPOINT,
            "https://vault.azure.net/",
            "ns",
            "pod-0",
        );
        assert_eq!(
            r.url,
            "http://localhost:2579/host/token/?resource=https://vault.azure.net"
        );
        assert_eq!(
            r.headers,
            vec![("podns", "ns".to_owned()), ("podname", "pod-0".to_owned())]
        );
    }

    #[test]
    fn parses_string_and_number_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let (t, cid) = parse_token(
            br#"{"token":{"access_token":"a","refresh_token":"","expires_in":"3599","expires_on":"1700000000","not_before":"1","resource":"https://vault.azure.net","token_type":"Bearer"},"clientid":"c1"}"#,
            now,
        )
        .unwrap();
        assert_eq!(cid, "c1");
        assert_eq!(
            t.expires_on,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let (t, _) = parse_token(
            br#"{"token":{"access_token":"a","expires_on":1700000001},"clientid":"c1"}"#,
            now,
        )
        .unwrap();
        assert_eq!(
            t.expires_on,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_001)
        );
        let (t, _) = parse_token(
            br#"{"token":{"access_token":"a","expires_on":"soon"},"clientid":"c1"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires_on, now);
    }

    #[test]
    fn missing_values_error() {
        for body in [
            &br#"{"token":{"access_token":"","expires_on":"1"},"clientid":"c"}"#[..],
            br#"{"token":{"access_token":"a","expires_on":"1"},"clientid":""}"#,
            br#"{}"#,
            b"garbage",
        ] {
            let e = parse_token(body, SystemTime::now()).unwrap_err();
            assert_eq!(
                e.to_string(),
                "nmi did not return expected values in response: token and clientid"
            );
            assert_eq!(e.class(), ErrorClass::Unauthenticated);
        }
    }

    #[test]
    fn non_200_text() {
        let e = map_error(&AuthResponse {
            status: 404,
            retry_after: None,
            body: SecretBytes::from(b"pod not found\n".to_vec()),
        });
        assert_eq!(
            e.to_string(),
            "nmi response failed with status code: 404, response body: pod not found"
        );
        assert_eq!(e.class(), ErrorClass::Unauthenticated);
        assert_eq!(e.code(), "nmi_rejected");
    }
}
