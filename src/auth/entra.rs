//! Entra ID token endpoint: client-secret and client-assertion request forms, response and
//! error parsing (service principal, workload identity, identity binding).

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::error::{AuthError, TokenService};
use super::transport::{AuthMethod, AuthRequest, AuthResponse, form_encode};
use super::{AccessToken, TokenTarget};
use crate::secret::SecretString;

/// The RFC 7523 client assertion type.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Credential presented to the token endpoint.
pub(crate) enum ClientCredential<'a> {
    /// `client_secret`.
    Secret(&'a SecretString),
    /// `client_assertion` (a service-account JWT).
    Assertion(&'a SecretString),
}

/// `<base>/<tenant>/oauth2/v2.0/token`; `base` is the authority host or the token proxy URL.
pub(crate) fn token_url(base: &str, tenant_id: &str) -> Result<String, AuthError> {
    // Tenant goes into the URL path: azidentity's rule `[0-9A-Za-z.-]+` keeps it a single
    // path segment.
    if tenant_id.is_empty()
        || !tenant_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(AuthError::InvalidTenant(tenant_id.to_owned()));
    }
    Ok(format!(
        "{}/{tenant_id}/oauth2/v2.0/token",
        base.trim_end_matches('/')
    ))
}

/// Builds the form body for a client-credentials grant.
pub(crate) fn token_form(
    client_id: &str,
    credential: &ClientCredential<'_>,
    target: &TokenTarget,
) -> SecretString {
    let scope = target.scope();
    let body = match credential {
        ClientCredential::Secret(secret) => form_encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose()),
            ("scope", &scope),
        ]),
        ClientCredential::Assertion(assertion) => form_encode(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", assertion.expose()),
            ("client_id", client_id),
            ("scope", &scope),
        ]),
    };
    SecretString::new(body)
}

/// Builds the POST for `url` with `form`.
pub(crate) fn token_request(url: &str, form: &SecretString) -> AuthRequest {
    AuthRequest {
        method: AuthMethod::Post,
        url: url.to_owned(),
        headers: Vec::new(),
        form: Some(form.clone()),
    }
}

/// A number that some services send as a JSON string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum NumOrString {
    Num(i64),
    Float(f64),
    Str(String),
}

impl NumOrString {
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Num(n) => Some(*n),
            #[expect(
                clippy::cast_possible_truncation,
                reason = "seconds; fractions irrelevant"
            )]
            Self::Float(f) if f.is_finite() => Some(*f as i64),
            Self::Float(_) => None,
            Self::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(deserialize_with = "de_secret")]
    access_token: SecretString,
    expires_in: Option<NumOrString>,
    expires_on: Option<NumOrString>,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Deserializes straight into a `SecretString` (the `String` is moved, not copied).
pub(crate) fn de_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::new)
}

/// Expiry from `expires_on` (unix seconds) or else `now + expires_in`.
pub(crate) fn expiry(
    now: SystemTime,
    expires_in: Option<&NumOrString>,
    expires_on: Option<&NumOrString>,
) -> Option<SystemTime> {
    if let Some(on) = expires_on.and_then(NumOrString::as_i64)
        && let Ok(secs) = u64::try_from(on)
    {
        return Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    }
    let secs = u64::try_from(expires_in.and_then(NumOrString::as_i64)?).ok()?;
    Some(now + Duration::from_secs(secs))
}

/// Parses a 200 body into a token.
pub(crate) fn parse_token(
    service: TokenService,
    body: &[u8],
    now: SystemTime,
) -> Result<AccessToken, AuthError> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| AuthError::InvalidResponse {
            service,
            // serde's message names the position and expectation, never the value.
            message: format!(
                "{} returned a token response that is not valid JSON: {}",
                service.name(),
                e.classify_message()
            ),
        })?;
    if parsed.access_token.is_empty() {
        return Err(AuthError::InvalidResponse {
            service,
            message: format!("{} returned an empty access_token", service.name()),
        });
    }
    let expires_on = expiry(now, parsed.expires_in.as_ref(), parsed.expires_on.as_ref())
        .ok_or_else(|| AuthError::InvalidResponse {
            service,
            message: format!(
                "{} returned a token without a valid expires_in/expires_on",
                service.name()
            ),
        })?;
    Ok(AccessToken {
        token: parsed.access_token,
        expires_on,
        obtained_at: now,
    })
}

trait ClassifyMessage {
    fn classify_message(&self) -> &'static str;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields or types",
            serde_json::error::Category::Eof => "truncated body",
        }
    }
}

/// The first line of a body's `error_description` (and the `error` code), when it is JSON.
pub(crate) fn error_summary(body: &[u8]) -> (String, String) {
    let e: ErrorResponse = serde_json::from_slice(body).unwrap_or_default();
    let first = e
        .error_description
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    (e.error, first)
}

/// Fix-it hint for common `AADSTS` codes.
fn aadsts_hint(description: &str) -> Option<&'static str> {
    let code = description
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.starts_with("AADSTS"))?;
    Some(match code {
        "AADSTS7000215" | "AADSTS7000222" => {
            "the client secret is wrong or expired: update clientsecret in the nodePublishSecretRef secret"
        }
        "AADSTS700016" => {
            "no application with this client ID in the tenant: check clientID/clientid and tenantID"
        }
        "AADSTS90002" => "the tenant was not found: check tenantID and cloudName",
        "AADSTS70021" | "AADSTS700213" | "AADSTS700211" => {
            "no matching federated identity credential: check its issuer (the cluster's OIDC issuer), subject (system:serviceaccount:<namespace>:<service account>) and audience"
        }
        "AADSTS700024" => "the service-account token has expired or is not yet valid",
        _ => return None,
    })
}

/// Maps a non-2xx, non-retryable response to an error.
pub(crate) fn map_error(service: TokenService, client_id: &str, resp: &AuthResponse) -> AuthError {
    let (code, description) = error_summary(resp.body.expose());
    let mut message = format!(
        "{} rejected the token request for client ID {client_id:?} (status {})",
        service.name(),
        resp.status
    );
    if !code.is_empty() {
        message.push_str(&format!(": {code}"));
    }
    if !description.is_empty() {
        message.push_str(&format!(": {description}"));
    }
    if let Some(hint) = aadsts_hint(&description) {
        message.push_str(&format!("; {hint}"));
    }
    match resp.status {
        400 | 401 | 403 => AuthError::Rejected {
            service,
            status: resp.status,
            message,
        },
        // Anything else non-retryable (404 on a wrong authority path, ...) is not the
        // credential's fault; keep the text but classify it as a server error.
        status => AuthError::ServerError { service, status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::secret::SecretBytes;

    fn target() -> TokenTarget {
        TokenTarget {
            authority_host: "https://login.microsoftonline.com/".into(),
            tenant_id: "tenant-1".into(),
            resource: "https://vault.azure.net".into(),
        }
    }

    #[test]
    fn url_joins_authority_and_tenant() {
        assert_eq!(
            token_url("https://login.microsoftonline.com/", "t.1-a").unwrap(),
            "https://login.microsoftonline.com/t.1-a/oauth2/v2.0/token"
        );
        assert!(matches!(
            token_url("https://x/", "../evil"),
            Err(AuthError::InvalidTenant(_))
        ));
        assert!(token_url("https://x/", "").is_err());
    }

    #[test]
    fn client_secret_form() {
        let s = SecretString::from("s3cr=t&");
        let f = token_form("cid", &ClientCredential::Secret(&s), &target());
        assert_eq!(
            f.expose(),
            "grant_type=client_credentials&client_id=cid&client_secret=s3cr%3Dt%26&scope=https%3A%2F%2Fvault.azure.net%2F.default"
        );
    }

    #[test]
    fn client_assertion_form() {
        let s = SecretString::from("eyJ.a.b");
        let f = token_form("cid", &ClientCredential::Assertion(&s), &target());
        assert_eq!(
            f.expose(),
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJ.a.b&client_id=cid&scope=https%3A%2F%2Fvault.azure.net%2F.default"
        );
    }

    #[test]
    fn parses_numbers_and_strings() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let t = parse_token(
            TokenService::EntraId,
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires_on, now + Duration::from_secs(3599));
        assert_eq!(t.token.expose(), "abc");
        let t = parse_token(
            TokenService::Imds,
            br#"{"access_token":"x","expires_in":"86399","expires_on":"1700000000","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(
            t.expires_on,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let t = parse_token(
            TokenService::Imds,
            br#"{"access_token":"x","expires_in":"60"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires_on, now + Duration::from_secs(60));
    }

    #[test]
    fn bad_token_bodies_do_not_echo_content() {
        let now = SystemTime::now();
        for body in [
            &br#"{"access_token":"SECRETTOKEN"}"#[..],
            br#"{"access_token":"","expires_in":5}"#,
            br#"SECRETTOKEN"#,
        ] {
            let e = parse_token(TokenService::EntraId, body, now).unwrap_err();
            assert!(!e.to_string().contains("SECRETTOKEN"), "{e}");
            assert_eq!(e.class(), ErrorClass::Internal);
        }
    }

    #[test]
    fn aadsts_error_mapping() {
        let resp = AuthResponse {
            status: 401,
            retry_after: None,
            body: SecretBytes::from(
                br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]}"#.to_vec(),
            ),
        };
        let e = map_error(TokenService::EntraId, "cid", &resp);
        assert_eq!(e.class(), ErrorClass::Unauthenticated);
        assert_eq!(e.code(), "entra_id_rejected");
        let m = e.to_string();
        assert_eq!(
            m,
            "Entra ID rejected the token request for client ID \"cid\" (status 401): invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.; the client secret is wrong or expired: update clientsecret in the nodePublishSecretRef secret"
        );
        assert!(!m.contains("Trace ID"));
    }

    #[test]
    fn non_json_error_body() {
        let resp = AuthResponse {
            status: 400,
            retry_after: None,
            body: SecretBytes::from(b"<html>bad</html>".to_vec()),
        };
        let e = map_error(TokenService::EntraId, "cid", &resp);
        assert_eq!(
            e.to_string(),
            "Entra ID rejected the token request for client ID \"cid\" (status 400)"
        );
    }
}
