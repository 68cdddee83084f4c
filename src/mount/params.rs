//! SecretProviderClass attributes -> typed [`MountParams`] and [`ObjectSpec`]s;
//! validation as the reference does it, plus the unknown-key rule.

use crate::error::ErrorClass;
use crate::secret::SecretString;

use super::{MountInput, MountOptions};

/// Which collection an object lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `secret`
    Secret,
    /// `key`
    Key,
    /// `cert`
    Cert,
}

impl ObjectType {
    /// The SecretProviderClass spelling, also used in object version ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Cert => "cert",
        }
    }
}

/// `objectFormat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectFormat {
    /// `pem` (default)
    #[default]
    Pem,
    /// `pfx`: the base64 PKCS#12 text of a certificate-backed secret.
    Pfx,
}

/// `objectEncoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ObjectEncoding {
    /// `utf-8` (default): bytes as rendered.
    #[default]
    Utf8,
    /// `hex`: the rendered text is hex-decoded.
    Hex,
    /// `base64`: the rendered text is standard-base64-decoded.
    Base64,
}

/// One entry of `objects`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Position in the SecretProviderClass `objects` array.
    pub index: usize,
    /// Key Vault object name.
    pub object_name: String,
    /// Collection.
    pub object_type: ObjectType,
    /// File name override (may contain `/`).
    pub object_alias: Option<String>,
    /// Pinned version; `None` means latest (`""` and `latest` both map to `None`).
    pub object_version: Option<String>,
    /// Number of versions to write; 0 and 1 mean single-version mode.
    pub object_version_history: u32,
    /// Output format.
    pub object_format: ObjectFormat,
    /// Output encoding.
    pub object_encoding: ObjectEncoding,
    /// File mode from `filePermission`; `None` uses the request's default.
    pub file_permission: Option<u32>,
}

impl ObjectSpec {
    /// The base output path: alias if set, else the object name.
    pub fn file_name(&self) -> &str {
        self.object_alias.as_deref().unwrap_or(&self.object_name)
    }
}

/// A user-assigned managed identity reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAssignedIdentity {
    /// A client id (any value that is not an ARM resource id).
    ClientId(String),
    /// An ARM resource id (`/subscriptions/.../userAssignedIdentities/<name>`).
    ResourceId(String),
}

/// The selected identity mode with the material it needs.
#[derive(Clone, Debug)]
pub enum IdentityMode {
    /// Client secret from nodePublishSecretRef.
    ServicePrincipal {
        /// Application (client) id.
        client_id: String,
        /// Client secret.
        client_secret: SecretString,
    },
    /// The pod's service-account token for `api://AzureADTokenExchange` as a client assertion.
    WorkloadIdentity {
        /// Application or managed identity client id.
        client_id: String,
        /// The service-account JWT.
        service_account_token: SecretString,
    },
    /// IMDS on the node.
    VmManagedIdentity {
        /// `None` for the system-assigned identity.
        user_assigned: Option<UserAssignedIdentity>,
    },
    /// AAD pod identity through NMI.
    PodIdentity,
    /// AKS identity binding through the token proxy (`api://AKSIdentityBinding`).
    AzureTokenProxy {
        /// Client id.
        client_id: String,
        /// The service-account JWT.
        service_account_token: SecretString,
    },
}

/// Typed parameters of one Mount.
#[derive(Clone, Debug)]
pub struct MountParams {
    /// `keyvaultName`.
    pub keyvault_name: String,
    /// `tenantID`, else the legacy `tenantId`.
    pub tenant_id: String,
    /// `cloudName` (empty: the process default).
    pub cloud_name: String,
    /// `cloudEnvFileName`.
    pub cloud_env_file_name: Option<String>,
    /// Identity mode and material.
    pub identity: IdentityMode,
    /// `csi.storage.k8s.io/pod.name`.
    pub pod_name: String,
    /// `csi.storage.k8s.io/pod.namespace`.
    pub pod_namespace: String,
    /// `csi.storage.k8s.io/pod.uid` (may be empty).
    pub pod_uid: String,
    /// Default file mode from the request.
    pub default_mode: u32,
    /// The objects, in SecretProviderClass order.
    pub objects: Vec<ObjectSpec>,
}

/// A parameter name that is not known (the unknown-key rule, azure-behaviour.md §12.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamWarning {
    /// The unknown key as given.
    pub key: String,
    /// The closest known key, when one is within edit distance 2.
    pub suggestion: Option<String>,
    /// `Some(index)` when the key is inside an `objects` entry.
    pub object_index: Option<usize>,
}

impl ParamWarning {
    /// Human-readable hint.
    pub fn hint(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("did you mean {s:?}?"),
            None => "not a parameter of rust-azure".to_owned(),
        }
    }
}

/// Parameters plus warnings.
#[derive(Clone, Debug)]
pub struct ParsedParams {
    /// The typed parameters.
    pub params: MountParams,
    /// Unknown keys that were ignored.
    pub warnings: Vec<ParamWarning>,
}

/// Invalid parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Placeholder until validation lands.
    #[error("parameter validation is not implemented")]
    NotImplemented,
}

impl ParamsError {
    /// Class deciding the gRPC code.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::InvalidArgument
    }

    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        "params_invalid"
    }
}

/// Parses and validates the parameters of a Mount.
///
/// # Errors
/// [`ParamsError`] for the first problem found, in the reference's order.
pub fn parse_params(
    _input: &MountInput,
    _options: &MountOptions,
) -> Result<ParsedParams, ParamsError> {
    Err(ParamsError::NotImplemented)
}
