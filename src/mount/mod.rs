//! One Mount: decoded request -> parameters -> credential -> fetch -> render ->
//! files and object versions. No tonic types here.

pub mod files;
pub mod params;
pub mod request;

use std::sync::Arc;

use crate::error::ErrorClass;
use crate::secret::SecretBytes;

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
    /// `<type>/<name>` or `<type>/<name>/<index>`.
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
    /// The Key Vault fetch is not available in this build.
    #[error(
        "fetching from Key Vault is not implemented in this build of rust-azure-provider; the SecretProviderClass is valid"
    )]
    FetchUnavailable,
    /// The provider is shutting down.
    #[error("rust-azure-provider is shutting down; the driver retries on the restarted provider")]
    Draining,
}

impl MountError {
    /// The class that decides the gRPC code.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Request(_) => ErrorClass::InvalidArgument,
            Self::Params(e) => e.class(),
            Self::Files(_) => ErrorClass::InvalidArgument,
            Self::FetchUnavailable => ErrorClass::Internal,
            Self::Draining => ErrorClass::Unavailable,
        }
    }

    /// A stable, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(_) => "request_invalid",
            Self::Params(e) => e.code(),
            Self::Files(_) => "path_invalid",
            Self::FetchUnavailable => "fetch_unavailable",
            Self::Draining => "draining",
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
#[derive(Debug)]
pub struct Provider {
    options: MountOptions,
}

impl Provider {
    /// A provider with the given options.
    pub fn new(options: MountOptions) -> Arc<Self> {
        Arc::new(Self { options })
    }

    /// The options this provider runs with.
    pub fn options(&self) -> &MountOptions {
        &self.options
    }

    /// Performs one Mount.
    ///
    /// # Errors
    /// Any [`MountError`]; nothing partial is returned.
    pub async fn mount(&self, input: MountInput) -> Result<MountOutput, MountError> {
        let parsed = params::parse_params(&input, &self.options)?;
        for warning in &parsed.warnings {
            tracing::warn!(parameter = %warning.key, hint = %warning.hint(), "unknown parameter ignored");
        }
        tracing::debug!(objects = parsed.params.objects.len(), "parameters valid");
        Err(MountError::FetchUnavailable)
    }
}
