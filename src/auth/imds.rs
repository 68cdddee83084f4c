//! VM / VMSS managed identity through IMDS: request shape, error texts and hints.

use super::entra::error_summary;
use super::error::{AuthError, TokenService};
use super::transport::{AuthMethod, AuthRequest, AuthResponse, form_encode};
use crate::mount::params::UserAssignedIdentity;

/// The IMDS address (a link-local constant on every Azure VM).
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// IMDS API version the reference sends.
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// azure-behaviour.md §12 #28.
pub const MULTIPLE_IDENTITIES_HINT: &str =
    "set userAssignedIdentityID (exact spelling) to the identity's client ID or resource ID";

/// Shown when IMDS cannot be reached.
pub const UNREACHABLE_HINT: &str = "does the provider run with hostNetwork: true, and can the node reach 169.254.169.254? If HTTP_PROXY is set, add 169.254.169.254 to NO_PROXY";

/// The identity dimension of the cache key and the query parameter.
pub(crate) fn identity_id(user_assigned: Option<&UserAssignedIdentity>) -> String {
    match user_assigned {
        None => "system".to_owned(),
        Some(UserAssignedIdentity::ClientId(id)) => format!("client_id:{id}"),
        Some(UserAssignedIdentity::ResourceId(id)) => format!("msi_res_id:{id}"),
    }
}

/// `GET <endpoint>/metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…|&msi_res_id=…]`.
pub(crate) fn token_request(
    endpoint: &str,
    resource: &str,
    user_assigned: Option<&UserAssignedIdentity>,
) -> AuthRequest {
    let mut pairs = vec![("api-version", IMDS_API_VERSION), ("resource", resource)];
    match user_assigned {
        None => {}
        Some(UserAssignedIdentity::ClientId(id)) => pairs.push(("client_id", id)),
        // §12 #27: ARM resource ids go out as msi_res_id.
        Some(UserAssignedIdentity::ResourceId(id)) => pairs.push(("msi_res_id", id)),
    }
    AuthRequest {
        method: AuthMethod::Get,
        url: format!(
            "{}/metadata/identity/oauth2/token?{}",
            endpoint.trim_end_matches('/'),
            form_encode(&pairs)
        ),
        headers: vec![("Metadata", "true".to_owned())],
        form: None,
    }
}

/// Maps a non-200, non-retryable IMDS answer.
pub(crate) fn map_error(
    resp: &AuthResponse,
    user_assigned: Option<&UserAssignedIdentity>,
) -> AuthError {
    let (code, description) = error_summary(resp.body.expose());
    let mut message = format!("IMDS rejected the token request (status {})", resp.status);
    if !code.is_empty() {
        message.push_str(&format!(": {code}"));
    }
    if !description.is_empty() {
        message.push_str(&format!(": {description}"));
    }
    if description.contains("Multiple user assigned identities exist") {
        message.push_str(&format!("; {MULTIPLE_IDENTITIES_HINT}"));
    } else if let Some(ua) = user_assigned {
        let id = match ua {
            UserAssignedIdentity::ClientId(id) | UserAssignedIdentity::ResourceId(id) => id,
        };
        message.push_str(&format!(
            "; is the identity {id:?} assigned to this node's VM/VMSS? Assign it to the node pool or set userAssignedIdentityID to an identity that is"
        ));
    } else {
        message.push_str(
            "; is a system-assigned identity enabled on this node's VM/VMSS? Otherwise set userAssignedIdentityID",
        );
    }
    match resp.status {
        400..=499 => AuthError::Rejected {
            service: TokenService::Imds,
            status: resp.status,
            message,
        },
        status => AuthError::ServerError {
            service: TokenService::Imds,
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use crate::secret::SecretBytes;

    #[test]
    fn request_shapes() {
        let r = token_request(DEFAULT_IMDS_ENDPOINT, "https://vault.azure.net", None);
        assert_eq!(
            r.url,
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
        );
        assert_eq!(r.headers, vec![("Metadata", "true".to_owned())]);
        assert_eq!(r.method, AuthMethod::Get);
        let r = token_request(
            DEFAULT_IMDS_ENDPOINT,
            "https://vault.azure.net",
            Some(&UserAssignedIdentity::ClientId("0000-1".into())),
        );
        assert!(r.url.ends_with("&client_id=0000-1"), "{}", r.url);
        let r = token_request(
            "http://imds/",
            "https://vault.azure.net",
            Some(&UserAssignedIdentity::ResourceId(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n".into(),
            )),
        );
        assert!(r.url.starts_with("http://imds/metadata/"), "{}", r.url);
        assert!(
            r.url.ends_with("&msi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fn"),
            "{}",
            r.url
        );
    }

    #[test]
    fn multiple_identities_hint() {
        let resp = AuthResponse {
            status: 400,
            retry_after: None,
            body: SecretBytes::from(br#"{"error":"invalid_request","error_description":"Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"}"#.to_vec()),
        };
        let e = map_error(&resp, None);
        assert_eq!(e.class(), ErrorClass::Unauthenticated);
        assert_eq!(
            e.to_string(),
            "IMDS rejected the token request (status 400): invalid_request: Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request; set userAssignedIdentityID (exact spelling) to the identity's client ID or resource ID"
        );
    }

    #[test]
    fn identity_not_assigned_hint() {
        let resp = AuthResponse {
            status: 400,
            retry_after: None,
            body: SecretBytes::from(
                br#"{"error":"invalid_request","error_description":"Identity not found"}"#.to_vec(),
            ),
        };
        let e = map_error(&resp, Some(&UserAssignedIdentity::ClientId("abc".into())));
        assert!(
            e.to_string()
                .contains("Identity not found; is the identity \"abc\" assigned"),
            "{e}"
        );
    }
}
