//! Token acquisition for every identity mode, behind one shared, digest-keyed token cache.
//!
//! [`TokenProvider::token`] turns a [`TokenRequest`] (identity mode + material, authority,
//! tenant, Key Vault resource, pod) into an [`AccessToken`]:
//!
//! | Mode | Wire request | Module |
//! |---|---|---|
//! | service principal | `POST <authority><tenant>/oauth2/v2.0/token`, client secret | [`entra`] |
//! | workload identity | same endpoint, SA token as `client_assertion` | [`entra`] |
//! | identity binding | same form, sent to the AKS token proxy (SNI, CA) | [`entra`], [`token_proxy`], [`sni_discovery`] |
//! | VM managed identity | `GET 169.254.169.254/metadata/identity/oauth2/token` | [`imds`] |
//! | pod identity | `GET localhost:2579/host/token/` | [`pod_identity`] |
//!
//! Every request goes through one [`AuthTransport`] (the process `HttpClient`, so
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, `--ca-bundle` and the user agent apply to Entra ID,
//! IMDS and NMI alike), is retried on transient failures inside the caller's deadline
//! ([`retry`]), and is coalesced and cached by [`cache`] (azure-behaviour.md §12 #5,
//! beyond.md §1 and Appendix A). Cold, each mode makes one token request per Mount; warm, none.
//!
//! # Where `azure_core` / `azure_identity` are used, and where not
//!
//! Versions: `azure_core` 1.1.0 and `azure_identity` 1.0.0, both with `default-features =
//! false` plus `tokio` (no reqwest of their own, no second TLS or crypto stack: no `aws-lc-sys`,
//! no `openssl-sys`; `cargo tree -i aws-lc-sys` / `-i openssl-sys` find nothing).
//!
//! **Used:**
//!
//! * **One credential interface.** Every identity mode is an implementation of
//!   `azure_core::credentials::TokenCredential` built from the Mount's parameters
//!   ([`credential::ServicePrincipalCredential`], [`credential::WorkloadIdentityCredential`],
//!   [`credential::IdentityBindingCredential`], [`credential::ImdsCredential`],
//!   [`credential::NmiCredential`], dispatched by [`credential::ModeCredential`]). On a cache
//!   miss, [`TokenProvider::token`] asks the mode's credential through that trait. Our cache
//!   (keyed by a digest of the credential material) stays in front of it. The SDK's
//!   `AccessToken` keeps the token in `Secret`, a `Cow<str>` that is not zeroized. We copy it
//!   into our zeroizing [`SecretString`] in the same function call ([`credential::from_sdk_token`]),
//!   so no SDK token value outlives the trait call. Failures travel as our [`AuthError`] boxed in
//!   `azure_core::Error` and are downcast back ([`credential::from_sdk_error`]), so gRPC
//!   codes, metric codes and messages are unchanged.
//! * **Workstation Mounts** (`mount --credential azure-cli|developer-tools`, [`developer`]):
//!   `azure_identity::AzureCliCredential` (the `az login` of the person running the command;
//!   runs `/bin/sh -c "cd /bin && az account get-access-token -o json --scope <vault>/.default
//!   --tenant <tenantId>"`) or `DeveloperToolsCredential` (Azure CLI, then Azure Developer CLI).
//!   These credentials start a process and send no HTTP request. Their options have no
//!   `ClientOptions` or transport, so there is no SDK HTTP traffic to route. The Key Vault
//!   requests of such a Mount use our [`crate::http::HttpClient`], so `HTTPS_PROXY`/`HTTP_PROXY`/
//!   `NO_PROXY` and `--ca-bundle` apply. An expired CLI token is refused here, because the SDK
//!   returns it unchecked.
//!
//! **Not used: the SDK's own token requests** (`ClientSecretCredential`,
//! `WorkloadIdentityCredential`, `ManagedIdentityCredential`). Behind our `TokenCredential`
//! impls we keep our own wire code (the two Entra ID POSTs, IMDS and NMI GETs are ~40 lines each):
//!
//! * **Error classification.** azure_identity 1.0's Entra response handler deserializes the
//!   error body as JSON before it keeps the status. A non-JSON 429/5xx (gateway page) therefore
//!   becomes a data-conversion error with no status, which breaks the §12.1 mapping
//!   (429 → ResourceExhausted, 5xx/connect → Unavailable). Its messages also add
//!   credential-type prefixes and troubleshooting links.
//! * **Secret hygiene.** Client secrets and assertions would have to be handed over as `Secret`
//!   (not zeroized), which would leave unwiped copies of our `SecretString` material
//!   (house-style §5).
//! * **Caching.** Its token cache is per credential instance and keyed by scopes only. A
//!   credential per Mount would cache nothing, and a shared one cannot tell two principals
//!   apart. We need our digest-keyed cache with single flight in any case.
//! * **IMDS.** `VirtualMachineManagedIdentityCredential` overwrites the caller's retry options
//!   with its own (6 retries from 1.34 s, up to 72 s in total). That does not fit a 90 s Mount
//!   deadline that also has to cover Key Vault, and its IMDS address is fixed.
//! * **NMI and identity binding** are not supported by azure_identity. Identity binding needs
//!   the token endpoint rewritten to the AKS token proxy, with a different TLS server name and
//!   trust root.
//!
//! Cost (release build, `cargo tree --locked -e normal --prefix none | sort -u | wc -l`): see
//! the README section "Trying an SPC from a workstation".
//!
//! The wire shapes match the reference (azure-behaviour.md §5) and are asserted in unit tests
//! and in `tests/auth.rs`.

pub mod cache;
pub mod credential;
pub mod developer;
pub mod entra;
pub mod error;
pub mod http_transport;
pub mod imds;
pub mod pod_identity;
pub mod principal;
pub mod proxy_transport;
pub mod retry;
pub mod sni_discovery;
pub mod token_proxy;
pub mod transport;

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

pub use cache::{CacheKey, ModeStats};
pub use error::{AuthError, TokenService};
pub use principal::{Authorized, Principal};
pub use retry::RetryPolicy;
pub use token_proxy::{TokenProxy, TokenProxySetup};
pub use transport::{AuthMethod, AuthRequest, AuthResponse, AuthTransport, TransportError};

use crate::mount::params::{IdentityMode, UserAssignedIdentity};
use crate::secret::SecretString;
use cache::{KeyBuilder, TokenCache};
use entra::ClientCredential;

/// Where a token is for: Entra ID authority, tenant and the Key Vault resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenTarget {
    /// Entra ID authority host, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: String,
    /// Tenant (directory) id.
    pub tenant_id: String,
    /// Key Vault resource, e.g. `https://vault.azure.net` (a trailing `/` is ignored).
    pub resource: String,
}

impl TokenTarget {
    /// The resource without a trailing `/` (IMDS and NMI `resource`).
    pub fn resource(&self) -> &str {
        self.resource.trim_end_matches('/')
    }

    /// `<resource>/.default` (Entra ID `scope`).
    pub fn scope(&self) -> String {
        format!("{}/.default", self.resource())
    }
}

/// The pod a Mount is for (from the `csi.storage.k8s.io/pod.*` attributes).
#[derive(Clone, Copy, Debug, Default)]
pub struct PodRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// UID (may be empty).
    pub uid: &'a str,
}

/// Everything that determines one token.
#[derive(Clone, Copy, Debug)]
pub struct TokenRequest<'a> {
    /// Mode and its material.
    pub identity: &'a IdentityMode,
    /// Authority, tenant, resource.
    pub target: &'a TokenTarget,
    /// The pod (used by pod identity, and in its cache key).
    pub pod: PodRef<'a>,
}

/// An access token and when it expires.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The bearer token.
    pub token: SecretString,
    /// Expiry reported by the token service.
    pub expires_on: SystemTime,
    /// When it was obtained (start of the lifetime used for the refresh margin).
    pub obtained_at: SystemTime,
}

/// Identity mode as a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeLabel {
    /// Client secret.
    ServicePrincipal = 0,
    /// Client assertion with the pod's SA token.
    WorkloadIdentity = 1,
    /// Client assertion through the AKS token proxy.
    IdentityBinding = 2,
    /// IMDS.
    Imds = 3,
    /// NMI.
    PodIdentity = 4,
}

impl ModeLabel {
    /// Number of modes.
    pub const COUNT: usize = 5;

    /// Every mode, in discriminant order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::ServicePrincipal,
        Self::WorkloadIdentity,
        Self::IdentityBinding,
        Self::Imds,
        Self::PodIdentity,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServicePrincipal => "service_principal",
            Self::WorkloadIdentity => "workload_identity",
            Self::IdentityBinding => "identity_binding",
            Self::Imds => "vm_managed_identity",
            Self::PodIdentity => "pod_identity",
        }
    }

    /// The label of `identity`.
    pub fn of(identity: &IdentityMode) -> Self {
        match identity {
            IdentityMode::ServicePrincipal { .. } => Self::ServicePrincipal,
            IdentityMode::WorkloadIdentity { .. } => Self::WorkloadIdentity,
            IdentityMode::AzureTokenProxy { .. } => Self::IdentityBinding,
            IdentityMode::VmManagedIdentity { .. } => Self::Imds,
            IdentityMode::PodIdentity => Self::PodIdentity,
        }
    }
}

/// A wall clock; injectable so tests can move time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Settings of a [`TokenProvider`].
#[derive(Clone)]
pub struct TokenProviderOptions {
    /// IMDS base URL (default [`imds::DEFAULT_IMDS_ENDPOINT`]).
    pub imds_endpoint: String,
    /// NMI base URL (default [`pod_identity::DEFAULT_NMI_ENDPOINT`]).
    pub nmi_endpoint: String,
    /// Identity binding; `None` makes that mode fail with `proxy transport not available`.
    pub token_proxy: Option<TokenProxySetup>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Bound on cached tokens.
    pub max_entries: usize,
    /// Wall clock.
    pub clock: Clock,
    /// Workstation only (`mount --credential`): every token comes from this azure_identity
    /// developer credential and the request's identity mode is not used.
    pub developer: Option<developer::DeveloperCredential>,
}

impl Default for TokenProviderOptions {
    fn default() -> Self {
        Self {
            imds_endpoint: imds::DEFAULT_IMDS_ENDPOINT.to_owned(),
            nmi_endpoint: pod_identity::DEFAULT_NMI_ENDPOINT.to_owned(),
            token_proxy: None,
            retry: RetryPolicy::default(),
            max_entries: cache::DEFAULT_MAX_ENTRIES,
            clock: Arc::new(SystemTime::now),
            developer: None,
        }
    }
}

/// Obtains tokens for every mode; one instance is shared by all Mounts.
pub struct TokenProvider {
    transport: Arc<dyn AuthTransport>,
    options: TokenProviderOptions,
    cache: TokenCache,
}

const PROXY_UNREACHABLE_HINT: &str = "is --token-proxy-url reachable from the host network (the chart sets dnsPolicy: ClusterFirstWithHostNet), and is --sni-name right?";

impl TokenProvider {
    /// A provider sending through `transport`.
    pub fn new(transport: Arc<dyn AuthTransport>, options: TokenProviderOptions) -> Self {
        let cache = TokenCache::new(options.max_entries);
        Self {
            transport,
            options,
            cache,
        }
    }

    /// Counters of `mode`.
    pub fn stats(&self, mode: ModeLabel) -> ModeStats {
        self.cache.stats(mode)
    }

    /// Tokens currently cached (plus in-flight requests).
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Entries evicted to keep the cache bounded.
    pub fn evictions(&self) -> u64 {
        self.cache.evictions()
    }

    fn proxy(&self) -> Result<(&TokenProxy, &Arc<dyn AuthTransport>), AuthError> {
        let proxy = self
            .options
            .token_proxy
            .as_ref()
            .ok_or_else(|| {
                AuthError::ProxyUnavailable("identity binding is not configured".into())
            })?
            .get()
            .ok_or_else(|| {
                AuthError::ProxyUnavailable("the SNI name is still being computed".into())
            })?;
        let transport = proxy
            .transport
            .as_ref()
            .map_err(|e| AuthError::ProxyUnavailable(e.clone()))?;
        Ok((proxy, transport))
    }

    /// The digest of the complete credential material of `req` (beyond.md Appendix A).
    ///
    /// # Errors
    /// The preconditions of the mode: pod information for NMI, a usable token proxy for
    /// identity binding.
    pub fn cache_key(&self, req: &TokenRequest<'_>) -> Result<CacheKey, AuthError> {
        let t = req.target;
        let key = match req.identity {
            IdentityMode::ServicePrincipal {
                client_id,
                client_secret,
            } => {
                let mut b = KeyBuilder::new("service_principal");
                b.field(&t.authority_host)
                    .field(&t.tenant_id)
                    .field(client_id)
                    .field(&t.scope())
                    .secret_digest(client_secret.expose());
                b.finish()
            }
            IdentityMode::WorkloadIdentity {
                client_id,
                service_account_token,
            } => {
                let mut b = KeyBuilder::new("workload_identity");
                b.field(&t.authority_host)
                    .field(&t.tenant_id)
                    .field(client_id)
                    .field(&t.scope())
                    .field("api://AzureADTokenExchange")
                    .secret_digest(service_account_token.expose());
                b.finish()
            }
            IdentityMode::AzureTokenProxy {
                client_id,
                service_account_token,
            } => {
                let (proxy, _) = self.proxy()?;
                let mut b = KeyBuilder::new("identity_binding");
                b.field(&t.authority_host)
                    .field(&t.tenant_id)
                    .field(client_id)
                    .field(&t.scope())
                    .field(token_proxy::IDENTITY_BINDING_AUDIENCE)
                    .field(&proxy.url)
                    .field(&proxy.sni_name)
                    .secret_digest(service_account_token.expose());
                b.finish()
            }
            IdentityMode::VmManagedIdentity { user_assigned } => {
                let mut b = KeyBuilder::new("vm_managed_identity");
                b.field(&self.options.imds_endpoint)
                    .field(t.resource())
                    .field(&imds::identity_id(user_assigned.as_ref()));
                b.finish()
            }
            IdentityMode::PodIdentity => {
                if req.pod.namespace.is_empty() || req.pod.name.is_empty() {
                    return Err(AuthError::PodInfoMissing);
                }
                let mut b = KeyBuilder::new("pod_identity");
                b.field(&self.options.nmi_endpoint)
                    .field(t.resource())
                    .field(req.pod.namespace)
                    .field(req.pod.name)
                    .field(req.pod.uid);
                b.finish()
            }
        };
        Ok(key)
    }

    /// A token for `req`: from the cache, from an identical in-flight request, or fetched.
    ///
    /// # Errors
    /// [`AuthError`]; `DeadlineExceeded` when `deadline` passes first.
    pub async fn token(
        &self,
        req: &TokenRequest<'_>,
        deadline: Instant,
    ) -> Result<AccessToken, AuthError> {
        if let Some(developer) = &self.options.developer {
            // One Mount per process: nothing to cache, and the CLI keeps its own token cache.
            let clock = &self.options.clock;
            return developer.token(req.target, deadline, || clock()).await;
        }
        // The cache key includes the SNI name, which start-up discovery may still be computing.
        if let IdentityMode::AzureTokenProxy { .. } = req.identity
            && let Some(setup) = &self.options.token_proxy
            && tokio::time::timeout_at(deadline, setup.settled())
                .await
                .is_err()
        {
            return Err(AuthError::DeadlineExceeded {
                service: TokenService::TokenProxy,
            });
        }
        let key = self.cache_key(req)?;
        let mode = ModeLabel::of(req.identity);
        let clock = &self.options.clock;
        let fut = self
            .cache
            .get_or_fetch(key, mode, || clock(), || self.fetch(req, deadline));
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(result) => result,
            Err(_) => Err(AuthError::DeadlineExceeded {
                service: service_of(req.identity),
            }),
        }
    }

    /// [`TokenProvider::token`] plus the principal the request's credential was accepted for
    /// (from the token cache, which is keyed by the exact credential material, or from a fresh
    /// answer of the token service). The only way to obtain a [`Principal`].
    ///
    /// # Errors
    /// As [`TokenProvider::token`].
    pub async fn authorize(
        &self,
        req: &TokenRequest<'_>,
        deadline: Instant,
    ) -> Result<Authorized, AuthError> {
        let token = self.token(req, deadline).await?;
        let principal = Principal::of(req, &self.options.imds_endpoint, &self.options.nmi_endpoint);
        Ok(Authorized { token, principal })
    }

    /// Fetches through the mode's [`credential::ModeCredential`]: the cache above asks every
    /// identity mode for tokens through azure_core's `TokenCredential` trait.
    async fn fetch(
        &self,
        req: &TokenRequest<'_>,
        deadline: Instant,
    ) -> Result<AccessToken, AuthError> {
        let credential = credential::ModeCredential::new(self, req, deadline);
        credential::token_via_trait(&credential, req.target, || (self.options.clock)()).await
    }

    async fn fetch_identity_binding(
        &self,
        client_id: &str,
        service_account_token: &SecretString,
        t: &TokenTarget,
        deadline: Instant,
    ) -> Result<AccessToken, AuthError> {
        let (proxy, transport) = self.proxy()?;
        // Same path as Entra ID, different origin (§5.6).
        let url = entra::token_url(&proxy.url, &t.tenant_id)?;
        let form = entra::token_form(
            client_id,
            &ClientCredential::Assertion(service_account_token),
            t,
        );
        self.post_entra(
            &**transport,
            TokenService::TokenProxy,
            &url,
            &form,
            client_id,
            deadline,
            Some(PROXY_UNREACHABLE_HINT),
        )
        .await
    }

    async fn fetch_imds(
        &self,
        user_assigned: Option<&UserAssignedIdentity>,
        t: &TokenTarget,
        deadline: Instant,
    ) -> Result<AccessToken, AuthError> {
        let resp = retry::send_with_retry(
            &*self.transport,
            TokenService::Imds,
            &self.options.retry,
            deadline,
            Some(imds::UNREACHABLE_HINT),
            || imds::token_request(&self.options.imds_endpoint, t.resource(), user_assigned),
        )
        .await?;
        if (200..300).contains(&resp.status) {
            entra::parse_token(
                TokenService::Imds,
                resp.body.expose(),
                (self.options.clock)(),
            )
        } else {
            Err(imds::map_error(&resp, user_assigned))
        }
    }

    async fn fetch_nmi(
        &self,
        pod: PodRef<'_>,
        t: &TokenTarget,
        deadline: Instant,
    ) -> Result<AccessToken, AuthError> {
        let resp = retry::send_with_retry(
            &*self.transport,
            TokenService::Nmi,
            &self.options.retry,
            deadline,
            Some(pod_identity::UNREACHABLE_HINT),
            || {
                pod_identity::token_request(
                    &self.options.nmi_endpoint,
                    t.resource(),
                    pod.namespace,
                    pod.name,
                )
            },
        )
        .await?;
        if resp.status == 200 {
            pod_identity::parse_token(resp.body.expose(), (self.options.clock)())
                .map(|(token, _client_id)| token)
        } else {
            Err(pod_identity::map_error(&resp))
        }
    }

    /// Client-credentials request straight to Entra ID (service principal and
    /// workload identity differ only in the credential).
    async fn entra_direct(
        &self,
        client_id: &str,
        credential: &ClientCredential<'_>,
        t: &TokenTarget,
        deadline: Instant,
    ) -> Result<AccessToken, AuthError> {
        let url = entra::token_url(&t.authority_host, &t.tenant_id)?;
        let form = entra::token_form(client_id, credential, t);
        self.post_entra(
            &*self.transport,
            TokenService::EntraId,
            &url,
            &form,
            client_id,
            deadline,
            None,
        )
        .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "internal helper shared by three modes"
    )]
    async fn post_entra(
        &self,
        transport: &dyn AuthTransport,
        service: TokenService,
        url: &str,
        form: &SecretString,
        client_id: &str,
        deadline: Instant,
        hint: Option<&'static str>,
    ) -> Result<AccessToken, AuthError> {
        let resp = retry::send_with_retry(
            transport,
            service,
            &self.options.retry,
            deadline,
            hint,
            || entra::token_request(url, form),
        )
        .await?;
        if (200..300).contains(&resp.status) {
            entra::parse_token(service, resp.body.expose(), (self.options.clock)())
        } else {
            Err(entra::map_error(service, client_id, &resp))
        }
    }
}

fn service_of(identity: &IdentityMode) -> TokenService {
    match identity {
        IdentityMode::ServicePrincipal { .. } | IdentityMode::WorkloadIdentity { .. } => {
            TokenService::EntraId
        }
        IdentityMode::AzureTokenProxy { .. } => TokenService::TokenProxy,
        IdentityMode::VmManagedIdentity { .. } => TokenService::Imds,
        IdentityMode::PodIdentity => TokenService::Nmi,
    }
}

#[cfg(test)]
mod tests;
