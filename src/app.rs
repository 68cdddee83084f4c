//! Wiring: builds the shared outbound client, token provider, Key Vault client
//! and the Mount [`Provider`] from validated settings.

use std::sync::Arc;

use crate::auth::sni_discovery::DiscoveryTarget;
use crate::auth::{TokenProvider, TokenProviderOptions, TokenProxySetup};
use crate::config::Settings;
use crate::http::{HttpClient, HttpConfig, HttpError};
use crate::keyvault::{KeyVaultClient, ObjectCache, RetryPolicy};
use crate::metrics::Metrics;
use crate::mount::{MountOptions, Provider, ProviderParts};

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The outbound HTTP client cannot be built (for example an unreadable --ca-bundle).
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Builds the provider for `settings`.
///
/// # Errors
/// [`StartupError`] when the outbound client cannot be built.
pub fn build_provider(
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> Result<Arc<Provider>, StartupError> {
    build_provider_with_discovery(settings, metrics, DiscoveryTarget::in_cluster())
}

/// [`build_provider`] with the API server that SNI name discovery dials (when `--sni-name` is
/// empty) and whose CA file the token proxy trusts; tests point it at a local server.
///
/// # Errors
/// [`StartupError`] when the outbound client cannot be built.
pub fn build_provider_with_discovery(
    settings: &Settings,
    metrics: Arc<Metrics>,
    discovery: DiscoveryTarget,
) -> Result<Arc<Provider>, StartupError> {
    let args = &settings.args;
    let http = HttpClient::new(&HttpConfig {
        ca_bundle: args.ca_bundle.clone(),
        user_agent_suffix: args.custom_user_agent.clone(),
        proxy_override: args.outbound_proxy.clone(),
        no_proxy: args.no_proxy.clone(),
        ..HttpConfig::default()
    })?;
    let user_agent = http.user_agent().to_owned();
    // A proxy transport that cannot be built is reported only by Mounts that use identity
    // binding (as the reference does), never at start-up; discovery runs in the background
    // so the socket and /readyz do not wait for it.
    let token_proxy = TokenProxySetup::start(
        &args.token_proxy_url,
        &args.sni_name,
        &user_agent,
        discovery,
    );
    let tokens = TokenProvider::new(
        Arc::new(http.clone()),
        TokenProviderOptions {
            token_proxy: Some(token_proxy),
            ..TokenProviderOptions::default()
        },
    );
    let keyvault = KeyVaultClient::new(
        http,
        RetryPolicy {
            max_concurrent_per_vault: args.max_concurrent_per_vault,
            ..RetryPolicy::default()
        },
    )
    .with_object_cache(
        ObjectCache::new(args.object_cache_ttl, args.object_cache_max_bytes).map(Arc::new),
    );
    let provider = Provider::new(ProviderParts {
        options: MountOptions {
            default_cloud: args.cloud_name.clone(),
            construct_pem_chain: args.construct_pem_chain,
            write_cert_and_key_in_separate_files: args.write_cert_and_key_in_separate_files,
        },
        mount_timeout: args.mount_timeout,
        tokens,
        keyvault,
        metrics: metrics.clone(),
        process_cloud_file: crate::cloud::process_env_cloud_file(),
    });
    let weak = Arc::downgrade(&provider);
    metrics.attach(weak);
    Ok(provider)
}
