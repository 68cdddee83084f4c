//! Key Vault access: the REST client (get secret/key/certificate, list versions), the
//! object context carried by every error, and `KeyVaultError` classification. Tests reach
//! the client through a fake Key Vault over real HTTPS, so no injection trait is needed.

pub mod client;
pub mod model;
pub mod object_cache;

use std::fmt;
use std::time::Duration;

pub use client::{
    Caller, KEYVAULT_API_VERSION, KeyVaultClient, KeyVaultStats, KeyVaultStatsSnapshot, RetryPolicy,
};
pub use model::{CertificateBundle, KeyBundle, SecretBundle, VersionItem, VersionPage};
pub use object_cache::{ObjectCache, ObjectCacheStats};

use crate::error::ErrorClass;
use crate::http::TransportFailure;

/// The Key Vault object collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `/secrets`
    Secret,
    /// `/keys`
    Key,
    /// `/certificates`
    Certificate,
}

impl ObjectKind {
    /// URL path segment of the collection.
    pub fn path_segment(self) -> &'static str {
        match self {
            Self::Secret => "secrets",
            Self::Key => "keys",
            Self::Certificate => "certificates",
        }
    }

    /// The SecretProviderClass `objectType` spelling (`secret`, `key`, `cert`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Certificate => "cert",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Certificate => "certificate",
        }
    }
}

/// Which object a Key Vault call was about (used in every error message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// Collection.
    pub kind: ObjectKind,
    /// Object name.
    pub name: String,
    /// Pinned version, `None` for latest.
    pub version: Option<String>,
    /// Vault host (`<name>.vault.azure.net`) or the URL as given when unparsable.
    pub vault: String,
    /// True for version listings.
    pub listing: bool,
}

impl ObjectRef {
    /// Context for an object in a vault (empty version means latest).
    pub fn new(kind: ObjectKind, vault_url: &str, name: &str, version: Option<&str>) -> Self {
        let vault = url::Url::parse(vault_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| vault_url.to_owned());
        Self {
            kind,
            name: name.to_owned(),
            version: version.filter(|v| !v.is_empty()).map(str::to_owned),
            vault,
            listing: false,
        }
    }

    pub(crate) fn err(&self, kind: KeyVaultErrorKind) -> KeyVaultError {
        KeyVaultError {
            object: self.clone(),
            kind,
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.label(), self.name)?;
        match (&self.version, self.listing) {
            (_, true) => write!(f, " (versions)"),
            (Some(v), false) => write!(f, "@{v}"),
            (None, false) => write!(f, " (latest)"),
        }
    }
}

/// What went wrong in a Key Vault call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum KeyVaultErrorKind {
    /// Key Vault answered with a non-retryable error status.
    #[error("Key Vault returned {status}")]
    Service {
        /// HTTP status.
        status: u16,
        /// `error.code` (`SecretNotFound`, `Forbidden`, ...).
        code: Option<String>,
        /// `error.innererror.code` (`SecretDisabled`, `ForbiddenByPolicy`, ...).
        inner_code: Option<String>,
        /// `error.message`, length-capped.
        message: Option<String>,
        /// `error_description` of `WWW-Authenticate` on 401.
        www_authenticate: Option<String>,
    },
    /// A retryable status (5xx, 408) persisted through every retry.
    #[error("Key Vault returned {status} on all {attempts} attempts")]
    RetriesExhausted {
        /// Last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The last response as a service error.
        inner: Box<KeyVaultErrorKind>,
    },
    /// 429 not resolved within the retry budget or the deadline.
    #[error("Key Vault is throttling requests")]
    Throttled {
        /// The advised (or computed) wait that did not fit.
        advised_wait: Option<Duration>,
        /// Attempts made.
        attempts: u32,
    },
    /// The deadline ran out.
    #[error("deadline exceeded")]
    Deadline {
        /// The wait that would have passed the deadline, if that was the cause.
        advised_wait: Option<Duration>,
        /// Last failure, if any.
        last: Option<String>,
    },
    /// No usable response: connection, TLS or DNS failure (after retries where sensible).
    #[error("cannot reach Key Vault")]
    Unreachable {
        /// Failure kind.
        failure: TransportFailure,
        /// The transport error.
        #[source]
        source: std::sync::Arc<reqwest::Error>,
    },
    /// The vault host name does not exist (NXDOMAIN).
    #[error("vault host does not resolve")]
    VaultNotFound,
    /// The response body exceeded the cap.
    #[error("response too large")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The response body is not what the API documents.
    #[error("malformed response")]
    Malformed {
        /// What was wrong (position only, never content).
        detail: String,
    },
    /// A `nextLink` pointed away from the vault.
    #[error("nextLink to a foreign host")]
    ForeignNextLink {
        /// The foreign host.
        host: String,
    },
    /// The vault base URL is not `https://<host>/`.
    #[error("invalid vault URL")]
    InvalidVaultUrl,
    /// The bearer token cannot be sent as a header.
    #[error("invalid access token")]
    InvalidToken,
}

impl KeyVaultErrorKind {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Service { status, .. } => status_class(*status),
            Self::RetriesExhausted { inner, .. } => inner.class(),
            Self::Throttled { .. } | Self::TooLarge { .. } => ErrorClass::ResourceExhausted,
            Self::Deadline { .. } => ErrorClass::DeadlineExceeded,
            Self::Unreachable { .. } => ErrorClass::Unavailable,
            Self::VaultNotFound => ErrorClass::NotFound,
            Self::InvalidVaultUrl => ErrorClass::InvalidArgument,
            Self::Malformed { .. } | Self::ForeignNextLink { .. } | Self::InvalidToken => {
                ErrorClass::Internal
            }
        }
    }
}

fn status_class(status: u16) -> ErrorClass {
    match status {
        400 => ErrorClass::InvalidArgument,
        401 => ErrorClass::Unauthenticated,
        403 => ErrorClass::PermissionDenied,
        404 => ErrorClass::NotFound,
        408 => ErrorClass::DeadlineExceeded,
        429 => ErrorClass::ResourceExhausted,
        // A 5xx that survived our retries reached the service: not Unavailable,
        // which would make the driver re-issue the Mount at once (protocol.md §3.1).
        _ => ErrorClass::Internal,
    }
}

/// A failed Key Vault call, with the object it was about.
#[derive(Clone, Debug)]
pub struct KeyVaultError {
    /// The object.
    pub object: ObjectRef,
    /// The cause.
    pub kind: KeyVaultErrorKind,
}

impl std::error::Error for KeyVaultError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl KeyVaultError {
    /// The error class (azure-behaviour.md §12.1).
    pub fn class(&self) -> ErrorClass {
        self.kind.class()
    }

    /// HTTP status of the final response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            KeyVaultErrorKind::Service { status, .. }
            | KeyVaultErrorKind::RetriesExhausted { status, .. } => Some(*status),
            KeyVaultErrorKind::Throttled { .. } => Some(429),
            _ => None,
        }
    }

    /// Key Vault's `error.code`, if the service sent one.
    pub fn service_code(&self) -> Option<&str> {
        match &self.kind {
            KeyVaultErrorKind::Service { code, .. } => code.as_deref(),
            KeyVaultErrorKind::RetriesExhausted { inner, .. } => match inner.as_ref() {
                KeyVaultErrorKind::Service { code, .. } => code.as_deref(),
                _ => None,
            },
            _ => None,
        }
    }

    /// A bounded snake_case code for metrics.
    pub fn code(&self) -> &'static str {
        match &self.kind {
            KeyVaultErrorKind::Service { status, .. } => match status {
                400 => "keyvault_bad_request",
                401 => "keyvault_unauthorized",
                403 => "keyvault_forbidden",
                404 => "keyvault_not_found",
                _ => "keyvault_service_error",
            },
            KeyVaultErrorKind::RetriesExhausted { .. } => "keyvault_retries_exhausted",
            KeyVaultErrorKind::Throttled { .. } => "keyvault_throttled",
            KeyVaultErrorKind::Deadline { .. } => "keyvault_deadline",
            KeyVaultErrorKind::Unreachable { failure, .. } => match failure {
                TransportFailure::Tls => "keyvault_tls",
                TransportFailure::Dns => "keyvault_dns",
                TransportFailure::Timeout => "keyvault_timeout",
                _ => "keyvault_unreachable",
            },
            KeyVaultErrorKind::VaultNotFound => "keyvault_vault_not_found",
            KeyVaultErrorKind::TooLarge { .. } => "keyvault_response_too_large",
            KeyVaultErrorKind::Malformed { .. } => "keyvault_malformed_response",
            KeyVaultErrorKind::ForeignNextLink { .. } => "keyvault_foreign_next_link",
            KeyVaultErrorKind::InvalidVaultUrl => "keyvault_invalid_url",
            KeyVaultErrorKind::InvalidToken => "keyvault_invalid_token",
        }
    }
}

fn fmt_wait(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Joins an error's source chain, bounded in length.
fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let t = e.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = e.source();
    }
    let text = parts.join(": ");
    if text.chars().count() > 400 {
        text.chars().take(400).collect::<String>() + "…"
    } else {
        text
    }
}

impl KeyVaultError {
    fn write_service(&self, f: &mut fmt::Formatter<'_>, kind: &KeyVaultErrorKind) -> fmt::Result {
        let KeyVaultErrorKind::Service {
            status,
            code,
            inner_code,
            message,
            www_authenticate,
        } = kind
        else {
            return write!(f, "{kind}");
        };
        let obj = &self.object;
        let vault = &obj.vault;
        write!(f, "Key Vault returned {status}")?;
        if let Some(code) = code {
            write!(f, " {code}")?;
        }
        if let Some(inner) = inner_code {
            write!(f, " ({inner})")?;
        }
        if let Some(message) = message {
            write!(f, ": {}", message.trim_end_matches('.'))?;
        }
        if let Some(www) = www_authenticate {
            write!(f, " ({www})")?;
        }
        let noun = obj.kind.noun();
        let plural = obj.kind.path_segment();
        match status {
            401 => write!(
                f,
                ". The token was rejected: check tenantID, the identity and cloudName (the token must be issued for this vault's cloud)"
            ),
            403 => {
                let perm = if obj.listing { "list" } else { "get" };
                if inner_code.as_deref() == Some("SecretDisabled") {
                    write!(
                        f,
                        ". The {noun} version is disabled: enable it or set objectVersion to an enabled version"
                    )
                } else {
                    write!(
                        f,
                        ". Grant the identity the '{perm}' permission on {plural} in vault {vault} (access policy or an RBAC role), and check the vault's network rules"
                    )
                }
            }
            404 => write!(
                f,
                ". Check objectName and objectVersion, and that the {noun} exists in vault {vault}"
            ),
            400 => write!(f, ". Check objectName and objectVersion"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for KeyVaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vault = &self.object.vault;
        write!(f, "{}: ", self.object)?;
        match &self.kind {
            k @ KeyVaultErrorKind::Service { .. } => self.write_service(f, k),
            KeyVaultErrorKind::RetriesExhausted {
                attempts, inner, ..
            } => {
                self.write_service(f, inner)?;
                write!(f, " (after {attempts} attempts)")
            }
            KeyVaultErrorKind::Throttled {
                advised_wait,
                attempts,
            } => {
                write!(
                    f,
                    "Key Vault {vault} is throttling requests (429) after {attempts} attempt(s)"
                )?;
                match advised_wait {
                    Some(w) => write!(
                        f,
                        "; the advised wait of {} does not fit in this Mount's time budget. The mount will be retried later; reduce request rates against this vault if it persists",
                        fmt_wait(*w)
                    ),
                    None => write!(f, "; throttling was not resolved within the retry budget"),
                }
            }
            KeyVaultErrorKind::Deadline { advised_wait, last } => {
                write!(
                    f,
                    "the Mount deadline ran out while calling Key Vault {vault}"
                )?;
                if let Some(last) = last {
                    write!(f, " (last result: {last})")?;
                }
                if let Some(w) = advised_wait {
                    write!(f, "; the next retry would have waited {}", fmt_wait(*w))?;
                }
                Ok(())
            }
            KeyVaultErrorKind::Unreachable { failure, source } => {
                let what = match failure {
                    TransportFailure::Tls => "TLS handshake failed",
                    TransportFailure::Dns => "DNS lookup failed",
                    TransportFailure::Connect => "connection failed",
                    TransportFailure::Timeout => "request timed out",
                    TransportFailure::Broken => "connection broke",
                    TransportFailure::Other => "request failed",
                };
                write!(
                    f,
                    "cannot reach Key Vault {vault}: {what}: {}",
                    chain_text(source)
                )?;
                if *failure == TransportFailure::Tls {
                    write!(
                        f,
                        ". If a TLS-inspecting proxy or a private CA is in use, pass its CA certificate with --ca-bundle"
                    )?;
                }
                Ok(())
            }
            KeyVaultErrorKind::VaultNotFound => write!(
                f,
                "vault host {vault} does not exist (DNS NXDOMAIN); check keyvaultName and cloudName"
            ),
            KeyVaultErrorKind::TooLarge { limit } => write!(
                f,
                "the Key Vault response from {vault} is larger than {limit} bytes"
            ),
            KeyVaultErrorKind::Malformed { detail } => {
                write!(f, "unexpected Key Vault response from {vault}: {detail}")
            }
            KeyVaultErrorKind::ForeignNextLink { host } => write!(
                f,
                "Key Vault {vault} returned a nextLink to another host ({host}); refusing to follow it"
            ),
            KeyVaultErrorKind::InvalidVaultUrl => write!(
                f,
                "the vault URL is not a valid https URL; check keyvaultName and cloudName"
            ),
            KeyVaultErrorKind::InvalidToken => write!(
                f,
                "the access token contains characters that cannot be sent in an HTTP header"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str, message: &str) -> KeyVaultErrorKind {
        KeyVaultErrorKind::Service {
            status,
            code: Some(code.to_owned()),
            inner_code: None,
            message: Some(message.to_owned()),
            www_authenticate: None,
        }
    }

    #[test]
    fn not_found_message_names_object_and_vault() {
        let obj = ObjectRef::new(
            ObjectKind::Secret,
            "https://kv1.vault.azure.net/",
            "db-password",
            None,
        );
        let err = obj.err(service(
            404,
            "SecretNotFound",
            "A secret with (name/id) db-password was not found in this key vault.",
        ));
        assert_eq!(
            err.to_string(),
            "secret/db-password (latest): Key Vault returned 404 SecretNotFound: A secret with (name/id) db-password was not found in this key vault. Check objectName and objectVersion, and that the secret exists in vault kv1.vault.azure.net"
        );
        assert_eq!(err.class(), ErrorClass::NotFound);
        assert_eq!(err.code(), "keyvault_not_found");
        assert_eq!(err.service_code(), Some("SecretNotFound"));
    }

    #[test]
    fn classes_by_status() {
        let obj = ObjectRef::new(
            ObjectKind::Key,
            "https://kv1.vault.azure.net/",
            "k",
            Some("v1"),
        );
        for (status, class) in [
            (401, ErrorClass::Unauthenticated),
            (403, ErrorClass::PermissionDenied),
            (404, ErrorClass::NotFound),
            (400, ErrorClass::InvalidArgument),
            (409, ErrorClass::Internal),
        ] {
            let e = obj.err(service(status, "X", "m"));
            assert_eq!(e.class(), class, "{status}");
            assert!(e.to_string().starts_with("key/k@v1: "), "{e}");
        }
        let e = obj.err(KeyVaultErrorKind::Throttled {
            advised_wait: Some(Duration::from_secs(30)),
            attempts: 2,
        });
        assert_eq!(e.class(), ErrorClass::ResourceExhausted);
        assert!(e.to_string().contains("30s"), "{e}");
        let e = obj.err(KeyVaultErrorKind::VaultNotFound);
        assert_eq!(e.class(), ErrorClass::NotFound);
        assert!(e.to_string().contains("check keyvaultName and cloudName"));
    }
}
