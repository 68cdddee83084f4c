//! One Mount: decoded request -> parameters -> credential -> fetch -> render ->
//! files and object versions. No tonic types here.

mod fetch;
pub mod files;
pub mod params;
pub mod request;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::{AuthError, PodRef, Principal, TokenProvider, TokenRequest, TokenTarget};
use crate::cloud::{self, CloudError};
use crate::error::ErrorClass;
use crate::keyvault::{KeyVaultClient, KeyVaultError};
use crate::metrics::Metrics;
use crate::render::{RenderError, RenderOptions};
use crate::secret::SecretBytes;
use params::WarningKind;

pub use request::{MountInput, RequestError};

/// One file of the mount volume.
#[derive(Debug)]
pub struct OutputFile {
    /// Relative path, already validated against the driver's rules.
    pub path: String,
    /// Permission bits (0..=0o777).
    pub mode: u32,
    /// File contents.
    pub contents: SecretBytes,
}

/// Id and version of one emitted object, as stored in SecretProviderClassPodStatus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// `<type>/<name>` or `<type>/<name>/<index>`; `<type>/<name>@<vault>[/<index>]` for an
    /// object with its own `keyvaultName` (see [`files::object_id`]).
    pub id: String,
    /// Key Vault version id.
    pub version: String,
}

/// A successful Mount.
#[derive(Debug, Default)]
pub struct MountOutput {
    /// Files in SecretProviderClass order.
    pub files: Vec<OutputFile>,
    /// Object versions in emission order; never empty on success.
    pub object_versions: Vec<ObjectVersion>,
}

/// Any failure of a Mount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The request could not be decoded.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Parameters or objects are invalid.
    #[error(transparent)]
    Params(#[from] params::ParamsError),
    /// Output paths are invalid.
    #[error(transparent)]
    Files(#[from] files::FilesError),
    /// The cloud cannot be resolved.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// No token could be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A Key Vault request failed.
    #[error(transparent)]
    KeyVault(#[from] KeyVaultError),
    /// Stored content cannot be rendered as requested.
    #[error("{object}: {source}")]
    Render {
        /// `<type>/<name>[@version]`.
        object: String,
        /// Cause.
        #[source]
        source: RenderError,
    },
    /// A `jmesPath` entry produced no file (boxed to keep `MountError` small).
    #[error(transparent)]
    Extract(Box<ExtractFailure>),
    /// Version history asked to start at a version that does not exist or is disabled.
    #[error(
        "{object}: objectVersion is not an enabled version of this object, so its version history cannot start there; check objectVersion or enable the version in Key Vault"
    )]
    HistoryStartNotFound {
        /// `<type>/<name>@<version>`.
        object: String,
    },
    /// Key Vault answered without a field we need.
    #[error("{object}: malformed Key Vault response: {what}")]
    MalformedResponse {
        /// `<type>/<name>[@version]`.
        object: String,
        /// What is missing.
        what: &'static str,
    },
    /// The Mount budget ran out.
    #[error(
        "mount did not finish within {0:?} (--mount-timeout); Key Vault or Entra ID is slow or throttling, see the provider logs"
    )]
    Deadline(Duration),
}

/// A `jmesPath` entry produced no file: the value is not JSON, or the expression yields null or
/// fails. Never names the value.
#[derive(Debug, thiserror::Error)]
#[error("{object}: jmesPath entry with path {path:?} and objectAlias {object_alias:?}: {source}")]
pub struct ExtractFailure {
    /// `<type>/<name>[@version]`.
    pub object: String,
    /// The entry's expression.
    pub path: String,
    /// The entry's file.
    pub object_alias: String,
    /// Cause.
    #[source]
    pub source: crate::render::extract::ExtractError,
}

impl MountError {
    /// The class that decides the gRPC code.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Request(_) => ErrorClass::InvalidArgument,
            Self::Params(e) => e.class(),
            Self::Files(e) => e.class(),
            Self::Cloud(e) => e.class(),
            Self::Auth(e) => e.class(),
            Self::KeyVault(e) => e.class(),
            Self::Render { source, .. } => source.class(),
            Self::Extract(e) => e.source.class(),
            Self::HistoryStartNotFound { .. } => ErrorClass::NotFound,
            Self::MalformedResponse { .. } => ErrorClass::Internal,
            Self::Deadline(_) => ErrorClass::DeadlineExceeded,
        }
    }

    /// A stable, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(_) => "request_invalid",
            Self::Params(e) => e.code(),
            Self::Files(e) => e.code(),
            Self::Cloud(e) => e.code(),
            Self::Auth(e) => e.code(),
            Self::KeyVault(e) => e.code(),
            Self::Render { source, .. } => source.code(),
            Self::Extract(e) => e.source.code(),
            Self::HistoryStartNotFound { .. } => "history_start_not_found",
            Self::MalformedResponse { .. } => "keyvault_malformed",
            Self::Deadline(_) => "mount_deadline",
        }
    }
}

/// Process-wide options that shape every Mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Cloud used when the SecretProviderClass names none.
    pub default_cloud: String,
    /// Reorder PKCS#12 chains leaf -> root.
    pub construct_pem_chain: bool,
    /// Emit `.crt`/`.key` files for certificate-backed secrets.
    pub write_cert_and_key_in_separate_files: bool,
}

/// Executes Mounts; shared by every connection.
pub struct Provider {
    options: MountOptions,
    mount_timeout: Duration,
    tokens: TokenProvider,
    keyvault: KeyVaultClient,
    metrics: Arc<Metrics>,
    /// The provider's own `AZURE_ENVIRONMENT_FILEPATH` (read once; never set).
    process_cloud_file: Option<PathBuf>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("options", &self.options)
            .field("mount_timeout", &self.mount_timeout)
            .finish_non_exhaustive()
    }
}

/// Everything a [`Provider`] is built from.
#[expect(
    missing_debug_implementations,
    reason = "holds the token provider, which has no Debug"
)]
pub struct ProviderParts {
    /// Per-Mount options.
    pub options: MountOptions,
    /// Total budget of one Mount.
    pub mount_timeout: Duration,
    /// Token acquisition and cache.
    pub tokens: TokenProvider,
    /// Key Vault client.
    pub keyvault: KeyVaultClient,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The provider's own `AZURE_ENVIRONMENT_FILEPATH`.
    pub process_cloud_file: Option<PathBuf>,
}

impl Provider {
    /// A provider from its parts.
    pub fn new(parts: ProviderParts) -> Arc<Self> {
        Arc::new(Self {
            options: parts.options,
            mount_timeout: parts.mount_timeout,
            tokens: parts.tokens,
            keyvault: parts.keyvault,
            metrics: parts.metrics,
            process_cloud_file: parts.process_cloud_file,
        })
    }

    /// Performs one Mount within `--mount-timeout`.
    ///
    /// # Errors
    /// Any [`MountError`]; nothing partial is returned.
    pub async fn mount(&self, input: MountInput) -> Result<MountOutput, MountError> {
        let deadline = Instant::now() + self.mount_timeout;
        match tokio::time::timeout_at(deadline, self.mount_inner(input, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(MountError::Deadline(self.mount_timeout)),
        }
    }

    async fn mount_inner(
        &self,
        input: MountInput,
        deadline: Instant,
    ) -> Result<MountOutput, MountError> {
        let parsed = params::parse_params(&input, &self.options)?;
        for w in &parsed.warnings {
            match &w.kind {
                WarningKind::Deprecated { .. } => {
                    tracing::info!(parameter = %w.key, hint = %w.hint(), "deprecated parameter");
                }
                WarningKind::IgnoredInMode { .. } => {
                    tracing::warn!(parameter = %w.key, hint = %w.hint(), "parameter ignored");
                }
                WarningKind::UnknownKey | WarningKind::UnknownObjectsKey => {
                    self.metrics.unknown_parameter(if w.object_index.is_some() {
                        "object_field"
                    } else {
                        "parameter"
                    });
                    // The index is recorded only when there is one: JSON logs carry no
                    // Rust `None`/`Some(..)` text.
                    match w.object_index {
                        Some(index) => {
                            tracing::warn!(parameter = %w.key, object_index = index, hint = %w.hint(), "unknown parameter ignored")
                        }
                        None => {
                            tracing::warn!(parameter = %w.key, hint = %w.hint(), "unknown parameter ignored")
                        }
                    }
                }
            }
        }
        let p = parsed.params;
        let split = self.options.write_cert_and_key_in_separate_files;
        // Paths that exist whatever Key Vault returns are checked before any network I/O.
        let plan = files::plan_paths(&p.objects, split);
        files::check_paths(files::with_specs(
            plan.iter().filter(|f| f.is_certain()),
            &p.objects,
        ))?;

        let cloud = cloud::resolve_cloud(
            &p.cloud_name,
            p.cloud_env_file_name.as_deref().map(std::path::Path::new),
            self.process_cloud_file.clone(),
        )?;
        let target = TokenTarget {
            authority_host: cloud.authority_host.clone(),
            tenant_id: p.tenant_id.clone(),
            resource: cloud.keyvault_resource.clone(),
        };
        let token_request = TokenRequest {
            identity: &p.identity,
            target: &target,
            pod: PodRef {
                namespace: &p.pod_namespace,
                name: &p.pod_name,
                uid: &p.pod_uid,
            },
        };
        // The principal only matters to the object cache: with the cache off, no digest of it
        // is computed on the Mount path.
        let (token, principal) = if self.keyvault.object_cache().is_some() {
            let authorized = self.tokens.authorize(&token_request, deadline).await?;
            (authorized.token, Some(authorized.principal))
        } else {
            (self.tokens.token(&token_request, deadline).await?, None)
        };

        let render = RenderOptions {
            construct_pem_chain: self.options.construct_pem_chain,
            write_cert_and_key_in_separate_files: split,
        };
        // Every vault of the cloud shares one Key Vault resource, so one token serves them all.
        let vault_urls: Vec<String> = p
            .objects
            .iter()
            .map(|spec| cloud.vault_url(p.vault_of(spec)))
            .collect();
        let ctx = fetch::FetchContext {
            keyvault: &self.keyvault,
            token: &token.token,
            scope: principal.as_ref().map(Principal::as_bytes),
            deadline,
            render: &render,
            default_mode: p.default_mode,
        };
        // All objects at once (the reference fetches them one after another);
        // the first failure cancels the rest, and output keeps SPC order.
        let per_object = futures::future::try_join_all(p.objects.iter().zip(&vault_urls).map(
            |(spec, vault_url)| {
                let ctx = &ctx;
                async move {
                    let started = std::time::Instant::now();
                    let result = fetch::fetch_object(ctx, spec, vault_url).await;
                    let code = match &result {
                        Ok(_) => "",
                        Err(e) => e.code(),
                    };
                    self.metrics.keyvault_request(
                        spec.object_type.as_str(),
                        code,
                        started.elapsed(),
                    );
                    result
                }
            },
        ))
        .await?;

        let mut out = MountOutput::default();
        let mut owners = Vec::new();
        for (spec, emitted) in p.objects.iter().zip(per_object) {
            for e in emitted {
                owners.push(spec);
                out.files.push(e.file);
                out.object_versions.extend(e.version);
            }
        }
        files::check_paths(
            out.files
                .iter()
                .zip(owners)
                .map(|(f, spec)| (f.path.as_str(), spec)),
        )?;
        Ok(out)
    }
}

/// Reads one counter of a mode's token statistics.
type ModeStatField = fn(&crate::auth::ModeStats) -> u64;

impl crate::metrics::StatsSource for Provider {
    fn samples(&self) -> Vec<crate::metrics::StatSample> {
        use crate::auth::ModeLabel;
        use crate::metrics::StatSample;
        let modes: Vec<_> = ModeLabel::ALL
            .iter()
            .map(|m| (m.as_str(), self.tokens.stats(*m)))
            .collect();
        let mut out = Vec::new();
        for (mode, s) in &modes {
            for (result, value) in [("ok", s.requests_ok), ("error", s.requests_err)] {
                out.push(StatSample {
                    name: "token_requests",
                    help: "Token requests sent to Entra ID, IMDS, NMI or the token proxy",
                    labels: vec![("mode", mode), ("result", result)],
                    value,
                });
            }
        }
        let per_mode: [(&str, &str, ModeStatField); 3] = [
            ("token_cache_hits", "Tokens served from the cache", |s| {
                s.hits
            }),
            (
                "token_cache_misses",
                "Token lookups that had to fetch",
                |s| s.misses,
            ),
            (
                "token_coalesced_waits",
                "Token lookups that waited for an identical request in flight",
                |s| s.coalesced,
            ),
        ];
        for (name, help, get) in per_mode {
            for (mode, s) in &modes {
                out.push(StatSample {
                    name,
                    help,
                    labels: vec![("mode", mode)],
                    value: get(s),
                });
            }
        }
        let kv = self.keyvault.stats().snapshot();
        for (name, help, value) in [
            (
                "keyvault_attempts",
                "HTTP requests sent to Key Vault",
                kv.attempts,
            ),
            ("keyvault_retries", "Key Vault requests retried", kv.retries),
            (
                "keyvault_throttled",
                "429 responses from Key Vault",
                kv.throttled_responses,
            ),
            (
                "keyvault_throttle_gate_waits",
                "Requests that waited for a vault's Retry-After",
                kv.throttle_gate_waits,
            ),
            (
                "keyvault_budget_exhausted",
                "Requests failed because the next wait would pass the Mount deadline",
                kv.budget_exhausted,
            ),
            (
                "keyvault_coalesced",
                "Key Vault GETs that joined an identical request in flight",
                kv.coalesced,
            ),
        ] {
            out.push(StatSample {
                name,
                help,
                labels: vec![],
                value,
            });
        }
        let oc = self
            .keyvault
            .object_cache()
            .map(crate::keyvault::ObjectCache::stats)
            .unwrap_or_default();
        for (name, help, value) in [
            (
                "object_cache_hits",
                "Key Vault objects served from the object cache (--object-cache-ttl)",
                oc.hits,
            ),
            (
                "object_cache_misses",
                "Object-cache lookups that went to Key Vault",
                oc.misses,
            ),
            (
                "object_cache_evictions",
                "Object-cache entries evicted to stay within --object-cache-max-bytes",
                oc.evictions,
            ),
        ] {
            out.push(StatSample {
                name,
                help,
                labels: vec![],
                value,
            });
        }
        out
    }

    fn gauges(&self) -> Vec<crate::metrics::StatSample> {
        let oc = self
            .keyvault
            .object_cache()
            .map(crate::keyvault::ObjectCache::stats)
            .unwrap_or_default();
        vec![
            crate::metrics::StatSample {
                name: "object_cache_bytes",
                help: "Bytes held by the object cache (values, URLs and per-entry overhead)",
                labels: vec![],
                value: oc.bytes,
            },
            crate::metrics::StatSample {
                name: "object_cache_entries",
                help: "Entries held by the object cache",
                labels: vec![],
                value: oc.entries,
            },
        ]
    }
}
