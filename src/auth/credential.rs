//! Every identity mode as an implementation of azure_core's `TokenCredential`.
//!
//! The Mount path asks for tokens through this trait: [`super::TokenProvider::token`] looks in
//! the cache and, on a miss, builds the mode's credential from the Mount's parameters
//! ([`ModeCredential::new`]) and calls `get_token` with the Key Vault scope.
//!
//! Boundaries, both converted immediately:
//! * success: `azure_core::credentials::AccessToken` holds the token in `Secret`, a `Cow<str>`
//!   that is not wiped on drop. [`from_sdk_token`] copies it into our zeroizing
//!   [`SecretString`] and drops the SDK value at once; the window is one function call.
//! * failure: our [`AuthError`] travels boxed inside `azure_core::Error` (kind `Credential`)
//!   and [`from_sdk_error`] downcasts it back, so the gRPC code, metric code and message a
//!   Mount reports are exactly those of the typed error.

use std::fmt;
use std::time::SystemTime;

use azure_core::credentials::{self as sdk, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::time::OffsetDateTime;
use tokio::time::Instant;

use super::entra::ClientCredential;
use super::{AccessToken, AuthError, PodRef, TokenProvider, TokenRequest, TokenTarget};
use crate::mount::params::{IdentityMode, UserAssignedIdentity};
use crate::secret::SecretString;

/// The `.default` suffix of a resource scope.
const DEFAULT_SCOPE_SUFFIX: &str = "/.default";

/// Who the credentials are and where tokens come from, shared by every mode.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    provider: &'a TokenProvider,
    authority_host: &'a str,
    tenant_id: &'a str,
    deadline: Instant,
}

impl Ctx<'_> {
    /// The target of one `get_token` call: the Mount's authority and tenant, the scope's resource.
    fn target(&self, scopes: &[&str]) -> azure_core::Result<TokenTarget> {
        let resource = match scopes {
            [scope] => scope.strip_suffix(DEFAULT_SCOPE_SUFFIX).unwrap_or(scope),
            _ => {
                return Err(to_sdk_error(AuthError::Internal {
                    message: format!("exactly one scope is required, got {}", scopes.len()),
                }));
            }
        };
        Ok(TokenTarget {
            authority_host: self.authority_host.to_owned(),
            tenant_id: self.tenant_id.to_owned(),
            resource: resource.to_owned(),
        })
    }
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("authority_host", &self.authority_host)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

/// Service principal: client id and client secret from nodePublishSecretRef.
#[derive(Debug)]
pub struct ServicePrincipalCredential<'a> {
    ctx: Ctx<'a>,
    client_id: &'a str,
    client_secret: &'a SecretString,
}

/// Workload identity: the pod's service-account token as the client assertion.
#[derive(Debug)]
pub struct WorkloadIdentityCredential<'a> {
    ctx: Ctx<'a>,
    client_id: &'a str,
    service_account_token: &'a SecretString,
}

/// Identity binding: the client assertion sent to the AKS token proxy.
#[derive(Debug)]
pub struct IdentityBindingCredential<'a> {
    ctx: Ctx<'a>,
    client_id: &'a str,
    service_account_token: &'a SecretString,
}

/// VM managed identity through IMDS (system- or user-assigned).
#[derive(Debug)]
pub struct ImdsCredential<'a> {
    ctx: Ctx<'a>,
    user_assigned: Option<&'a UserAssignedIdentity>,
}

/// AAD pod identity through NMI.
#[derive(Debug)]
pub struct NmiCredential<'a> {
    ctx: Ctx<'a>,
    pod: PodRef<'a>,
}

/// The credential of one Mount's identity mode.
#[derive(Debug)]
pub enum ModeCredential<'a> {
    /// Client secret.
    ServicePrincipal(ServicePrincipalCredential<'a>),
    /// Workload identity.
    WorkloadIdentity(WorkloadIdentityCredential<'a>),
    /// Identity binding.
    IdentityBinding(IdentityBindingCredential<'a>),
    /// IMDS.
    Imds(ImdsCredential<'a>),
    /// NMI.
    PodIdentity(NmiCredential<'a>),
}

impl<'a> ModeCredential<'a> {
    /// The credential for `req`'s mode and material; tokens are fetched by `provider` within
    /// `deadline` (its transport, retries and error typing).
    pub fn new(provider: &'a TokenProvider, req: &TokenRequest<'a>, deadline: Instant) -> Self {
        let ctx = Ctx {
            provider,
            authority_host: &req.target.authority_host,
            tenant_id: &req.target.tenant_id,
            deadline,
        };
        match req.identity {
            IdentityMode::ServicePrincipal {
                client_id,
                client_secret,
            } => Self::ServicePrincipal(ServicePrincipalCredential {
                ctx,
                client_id,
                client_secret,
            }),
            IdentityMode::WorkloadIdentity {
                client_id,
                service_account_token,
            } => Self::WorkloadIdentity(WorkloadIdentityCredential {
                ctx,
                client_id,
                service_account_token,
            }),
            IdentityMode::AzureTokenProxy {
                client_id,
                service_account_token,
            } => Self::IdentityBinding(IdentityBindingCredential {
                ctx,
                client_id,
                service_account_token,
            }),
            IdentityMode::VmManagedIdentity { user_assigned } => Self::Imds(ImdsCredential {
                ctx,
                user_assigned: user_assigned.as_ref(),
            }),
            IdentityMode::PodIdentity => Self::PodIdentity(NmiCredential { ctx, pod: req.pod }),
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for ServicePrincipalCredential<'_> {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<sdk::AccessToken> {
        let t = self.ctx.target(scopes)?;
        let credential = ClientCredential::Secret(self.client_secret);
        let result = self
            .ctx
            .provider
            .entra_direct(self.client_id, &credential, &t, self.ctx.deadline)
            .await;
        to_sdk(result)
    }
}

#[async_trait::async_trait]
impl TokenCredential for WorkloadIdentityCredential<'_> {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<sdk::AccessToken> {
        let t = self.ctx.target(scopes)?;
        let credential = ClientCredential::Assertion(self.service_account_token);
        let result = self
            .ctx
            .provider
            .entra_direct(self.client_id, &credential, &t, self.ctx.deadline)
            .await;
        to_sdk(result)
    }
}

#[async_trait::async_trait]
impl TokenCredential for IdentityBindingCredential<'_> {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<sdk::AccessToken> {
        let t = self.ctx.target(scopes)?;
        let result = self
            .ctx
            .provider
            .fetch_identity_binding(
                self.client_id,
                self.service_account_token,
                &t,
                self.ctx.deadline,
            )
            .await;
        to_sdk(result)
    }
}

#[async_trait::async_trait]
impl TokenCredential for ImdsCredential<'_> {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<sdk::AccessToken> {
        let t = self.ctx.target(scopes)?;
        let result = self
            .ctx
            .provider
            .fetch_imds(self.user_assigned, &t, self.ctx.deadline)
            .await;
        to_sdk(result)
    }
}

#[async_trait::async_trait]
impl TokenCredential for NmiCredential<'_> {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<sdk::AccessToken> {
        let t = self.ctx.target(scopes)?;
        let result = self
            .ctx
            .provider
            .fetch_nmi(self.pod, &t, self.ctx.deadline)
            .await;
        to_sdk(result)
    }
}

#[async_trait::async_trait]
impl TokenCredential for ModeCredential<'_> {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<sdk::AccessToken> {
        match self {
            Self::ServicePrincipal(c) => c.get_token(scopes, options).await,
            Self::WorkloadIdentity(c) => c.get_token(scopes, options).await,
            Self::IdentityBinding(c) => c.get_token(scopes, options).await,
            Self::Imds(c) => c.get_token(scopes, options).await,
            Self::PodIdentity(c) => c.get_token(scopes, options).await,
        }
    }
}

/// Asks `credential` for a token for `target`'s Key Vault scope and converts the answer into
/// our types at once.
///
/// # Errors
/// Our [`AuthError`] when the credential carried one, otherwise
/// [`AuthError::Internal`] with the SDK error's text.
pub async fn token_via_trait(
    credential: &(dyn TokenCredential + '_),
    target: &TokenTarget,
    clock: impl FnOnce() -> SystemTime,
) -> Result<AccessToken, AuthError> {
    let scope = target.scope();
    match credential.get_token(&[scope.as_str()], None).await {
        Ok(token) => Ok(from_sdk_token(token, clock())),
        Err(e) => Err(from_sdk_error(e)),
    }
}

/// Our zeroizing token from the SDK's; the SDK's copy is dropped here.
pub fn from_sdk_token(token: sdk::AccessToken, obtained_at: SystemTime) -> AccessToken {
    let expires_on = SystemTime::from(token.expires_on);
    AccessToken {
        token: SecretString::from(token.token.secret()),
        expires_on,
        obtained_at,
    }
}

/// The SDK's token type for one of ours (only for the trait's return value).
fn to_sdk_token(token: &AccessToken) -> sdk::AccessToken {
    sdk::AccessToken::new(
        token.token.expose().to_owned(),
        OffsetDateTime::from(token.expires_on),
    )
}

fn to_sdk(result: Result<AccessToken, AuthError>) -> azure_core::Result<sdk::AccessToken> {
    match result {
        Ok(token) => Ok(to_sdk_token(&token)),
        Err(e) => Err(to_sdk_error(e)),
    }
}

/// Boxes our typed error so that [`from_sdk_error`] can recover it unchanged.
pub fn to_sdk_error(e: AuthError) -> azure_core::Error {
    azure_core::Error::new(ErrorKind::Credential, e)
}

/// Recovers the typed error carried by an SDK error.
pub fn from_sdk_error(e: azure_core::Error) -> AuthError {
    match e.into_downcast::<AuthError>() {
        Ok(typed) => typed,
        Err(other) => AuthError::Internal {
            message: format!("token credential failed: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{TokenProviderOptions, TokenService};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn typed_errors_survive_the_sdk_error() {
        let original = AuthError::Throttled {
            service: TokenService::EntraId,
            retry_after: Some(Duration::from_secs(7)),
        };
        let back = from_sdk_error(to_sdk_error(original.clone()));
        assert_eq!(back.code(), original.code());
        assert_eq!(back.class(), original.class());
        assert_eq!(back.to_string(), original.to_string());

        let foreign = azure_core::Error::with_message(ErrorKind::Io, "disk on fire");
        let back = from_sdk_error(foreign);
        assert_eq!(back.code(), "auth_internal");
        assert!(back.to_string().contains("disk on fire"), "{back}");
    }

    #[test]
    fn tokens_cross_the_boundary_unchanged() {
        let expires_on = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let ours = AccessToken {
            token: SecretString::from("tok"),
            expires_on,
            obtained_at: SystemTime::UNIX_EPOCH,
        };
        let back = from_sdk_token(to_sdk_token(&ours), SystemTime::UNIX_EPOCH);
        assert_eq!(back.token.expose(), "tok");
        assert_eq!(back.expires_on, expires_on);
    }

    #[tokio::test]
    async fn one_scope_is_required() {
        struct NoTransport;
        impl crate::auth::AuthTransport for NoTransport {
            fn send(
                &self,
                _request: crate::auth::AuthRequest,
                _timeout: Duration,
            ) -> futures::future::BoxFuture<
                '_,
                Result<crate::auth::AuthResponse, crate::auth::TransportError>,
            > {
                Box::pin(async {
                    Err(crate::auth::TransportError::Other(
                        "no request is expected".into(),
                    ))
                })
            }
        }
        let provider = TokenProvider::new(Arc::new(NoTransport), TokenProviderOptions::default());
        let identity = IdentityMode::PodIdentity;
        let target = TokenTarget {
            authority_host: "https://login.microsoftonline.com/".into(),
            tenant_id: "t".into(),
            resource: "https://vault.azure.net".into(),
        };
        let req = TokenRequest {
            identity: &identity,
            target: &target,
            pod: PodRef::default(),
        };
        let credential = ModeCredential::new(&provider, &req, Instant::now());
        let err = credential
            .get_token(&["a/.default", "b/.default"], None)
            .await
            .err()
            .map(from_sdk_error);
        assert!(
            matches!(&err, Some(AuthError::Internal { message }) if message.contains("exactly one scope")),
            "{err:?}"
        );
    }
}
