//! SecretProviderClass attributes -> typed [`MountParams`] and [`ObjectSpec`]s;
//! validation as the reference does it, plus the unknown-key rule.
//!
//! Checks run in the reference's order (azure-behaviour.md §1.1) so the first error a user sees
//! is the one the reference would report, with the fixes of §12 applied: case-variant parameter
//! names are rejected first, the vault name is checked up front, object fields are validated
//! before any network I/O, and messages say how to fix the SecretProviderClass. No message
//! echoes a value that could be secret (tokens, `secrets`); parameter names and non-secret values
//! such as booleans, cloud names and file modes are quoted.

mod identity;
mod objects;
mod unknown_keys;

use crate::error::ErrorClass;
use crate::secret::SecretString;

use super::request::{POD_NAME_KEY, POD_NAMESPACE_KEY, POD_UID_KEY};
use super::{MountInput, MountOptions};
use identity::ModeFlag;
use unknown_keys::{KeyCheck, check_key};

pub use identity::{IDENTITY_BINDING_AUDIENCE, WORKLOAD_IDENTITY_AUDIENCE};

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
    /// The object's own `keyvaultName` (rust-azure extension); `None` uses the
    /// SecretProviderClass's.
    pub keyvault_name: Option<String>,
    /// `jmesPath` entries (rust-azure extension, secrets only): one more file each.
    pub jmes_path: Vec<JmesPathEntry>,
}

/// One `jmesPath` entry: a JMESPath expression evaluated against the secret's JSON value and
/// the file its result is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JmesPathEntry {
    /// The JMESPath expression (`path`), checked to compile.
    pub path: String,
    /// The output file (`objectAlias`), checked against the path rules.
    pub object_alias: String,
    /// `filePermission`; `None` uses the object's mode.
    pub file_permission: Option<u32>,
}

impl JmesPathEntry {
    /// An entry writing the result of `path` to `object_alias`.
    pub fn new(path: impl Into<String>, object_alias: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            object_alias: object_alias.into(),
            file_permission: None,
        }
    }

    /// Sets the entry's `filePermission`.
    #[must_use]
    pub fn with_permission(mut self, mode: u32) -> Self {
        self.file_permission = Some(mode);
        self
    }
}

impl ObjectSpec {
    /// The base output path: alias if set, else the object name.
    pub fn file_name(&self) -> &str {
        self.object_alias.as_deref().unwrap_or(&self.object_name)
    }

    /// A spec with defaults (index 0, latest version, PEM, UTF-8, default mode); for tests and
    /// tools. Chain the `with_*` methods to adjust it.
    pub fn new(object_type: ObjectType, object_name: impl Into<String>) -> Self {
        Self {
            index: 0,
            object_name: object_name.into(),
            object_type,
            object_alias: None,
            object_version: None,
            object_version_history: 0,
            object_format: ObjectFormat::Pem,
            object_encoding: ObjectEncoding::Utf8,
            file_permission: None,
            keyvault_name: None,
            jmes_path: Vec::new(),
        }
    }

    /// `objectType: secret` named `object_name`.
    pub fn secret(object_name: impl Into<String>) -> Self {
        Self::new(ObjectType::Secret, object_name)
    }

    /// `objectType: key` named `object_name`.
    pub fn key(object_name: impl Into<String>) -> Self {
        Self::new(ObjectType::Key, object_name)
    }

    /// `objectType: cert` named `object_name`.
    pub fn cert(object_name: impl Into<String>) -> Self {
        Self::new(ObjectType::Cert, object_name)
    }

    /// Sets the position in the `objects` array.
    #[must_use]
    pub fn with_index(mut self, index: usize) -> Self {
        self.index = index;
        self
    }

    /// Sets `objectAlias`.
    #[must_use]
    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.object_alias = Some(alias.into());
        self
    }

    /// Pins `objectVersion`.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.object_version = Some(version.into());
        self
    }

    /// Sets `objectVersionHistory`.
    #[must_use]
    pub fn with_history(mut self, versions: u32) -> Self {
        self.object_version_history = versions;
        self
    }

    /// Sets `objectFormat`.
    #[must_use]
    pub fn with_format(mut self, format: ObjectFormat) -> Self {
        self.object_format = format;
        self
    }

    /// Sets `objectEncoding`.
    #[must_use]
    pub fn with_encoding(mut self, encoding: ObjectEncoding) -> Self {
        self.object_encoding = encoding;
        self
    }

    /// Sets the file mode (`filePermission`).
    #[must_use]
    pub fn with_permission(mut self, mode: u32) -> Self {
        self.file_permission = Some(mode);
        self
    }

    /// Sets the object's own `keyvaultName`.
    #[must_use]
    pub fn with_keyvault(mut self, vault: impl Into<String>) -> Self {
        self.keyvault_name = Some(vault.into());
        self
    }

    /// Adds a `jmesPath` entry.
    #[must_use]
    pub fn with_jmes_path(mut self, entry: JmesPathEntry) -> Self {
        self.jmes_path.push(entry);
        self
    }

    /// True when `objectVersionHistory` selects history mode (more than one version).
    pub fn is_history(&self) -> bool {
        self.object_version_history > 1
    }

    /// The vault the object is fetched from: its own `keyvaultName`, else `default`
    /// (the SecretProviderClass's).
    pub fn vault<'a>(&'a self, default: &'a str) -> &'a str {
        self.keyvault_name.as_deref().unwrap_or(default)
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

/// The selected identity mode with the material it needs. `Debug` redacts the secret fields.
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
    /// `keyvaultName`; `None` only when every object names its own vault.
    pub keyvault_name: Option<String>,
    /// `tenantID`, else the legacy `tenantId`.
    pub tenant_id: String,
    /// Canonical cloud name (`AzurePublicCloud`, `AzureUSGovernmentCloud`, `AzureChinaCloud`,
    /// `AzureGermanCloud` or `AzureStackCloud`): `cloudName`, else the process default.
    pub cloud_name: String,
    /// `cloudEnvFileName` (`None` when empty).
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

impl MountParams {
    /// The vault `spec` is fetched from: the object's own `keyvaultName`, else the
    /// SecretProviderClass's (parsing guarantees one of them is set).
    pub fn vault_of<'a>(&'a self, spec: &'a ObjectSpec) -> &'a str {
        spec.vault(self.keyvault_name.as_deref().unwrap_or_default())
    }

    /// Every vault of the Mount, in order of first use, without repetition.
    pub fn vaults(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for spec in &self.objects {
            let v = self.vault_of(spec);
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }
}

/// `keyvaultName`.
pub const KEYVAULT_NAME: &str = "keyvaultName";
/// `tenantID` (preferred spelling).
pub const TENANT_ID: &str = "tenantID";
/// `tenantId` (deprecated alias, read only when `tenantID` is empty).
pub const TENANT_ID_LEGACY: &str = "tenantId";
/// `cloudName`.
pub const CLOUD_NAME: &str = "cloudName";
/// `cloudEnvFileName`.
pub const CLOUD_ENV_FILE_NAME: &str = "cloudEnvFileName";
/// `usePodIdentity`.
pub const USE_POD_IDENTITY: &str = "usePodIdentity";
/// `useVMManagedIdentity`.
pub const USE_VM_MANAGED_IDENTITY: &str = "useVMManagedIdentity";
/// `useAzureTokenProxy`.
pub const USE_AZURE_TOKEN_PROXY: &str = "useAzureTokenProxy";
/// `userAssignedIdentityID`.
pub const USER_ASSIGNED_IDENTITY_ID: &str = "userAssignedIdentityID";
/// `clientID`.
pub const CLIENT_ID: &str = "clientID";
/// `objects`.
pub const OBJECTS: &str = "objects";
/// Prefix of the keys kubelet and the driver add; all of them are known.
pub const DRIVER_KEY_PREFIX: &str = "csi.storage.k8s.io/";

/// Top-level parameter names of the unknown-key rule (azure-behaviour.md §12.2), besides every
/// key starting with [`DRIVER_KEY_PREFIX`]. Order matters for case-variant suggestions:
/// `tenantID` comes before `tenantId` so `tenantid` is pointed at the preferred spelling.
pub const KNOWN_PARAMETERS: &[&str] = &[
    KEYVAULT_NAME,
    TENANT_ID,
    TENANT_ID_LEGACY,
    CLOUD_NAME,
    CLOUD_ENV_FILE_NAME,
    USE_POD_IDENTITY,
    USE_VM_MANAGED_IDENTITY,
    USE_AZURE_TOKEN_PROXY,
    USER_ASSIGNED_IDENTITY_ID,
    CLIENT_ID,
    OBJECTS,
    "secretProviderClass",
    "providerName",
];

/// Field names of one `objects` entry known to the unknown-key rule.
pub const KNOWN_OBJECT_FIELDS: &[&str] = &[
    "objectName",
    "objectType",
    "objectAlias",
    "objectVersion",
    "objectVersionHistory",
    "objectFormat",
    "objectEncoding",
    "filePermission",
    OBJECT_KEYVAULT_NAME,
    JMES_PATH,
];

/// The object field naming the object's own vault (rust-azure extension).
pub const OBJECT_KEYVAULT_NAME: &str = "keyvaultName";
/// The object field listing JSON extractions (rust-azure extension).
pub const JMES_PATH: &str = "jmesPath";
/// Keys of one `jmesPath` entry.
pub const JMES_PATH_FIELDS: &[&str] = &["path", "objectAlias", "filePermission"];

/// Cloud names accepted in `cloudName` (case-insensitively), as go-autorest v0.11.30 knows them.
pub const CLOUD_NAMES: &[&str] = &[
    "AzurePublicCloud",
    "AzureCloud",
    "AzureUSGovernmentCloud",
    "AzureUSGovernment",
    "AzureChinaCloud",
    "AzureGermanCloud",
    "AzureStackCloud",
];

/// The canonical name of a cloud given in any letter case, with aliases resolved
/// (`AzureCloud` -> `AzurePublicCloud`, `AzureUSGovernment` -> `AzureUSGovernmentCloud`);
/// `None` for an unknown name.
pub fn canonical_cloud_name(name: &str) -> Option<&'static str> {
    let found = CLOUD_NAMES.iter().find(|c| c.eq_ignore_ascii_case(name))?;
    Some(match *found {
        "AzureCloud" => "AzurePublicCloud",
        "AzureUSGovernment" => "AzureUSGovernmentCloud",
        other => other,
    })
}

/// What a [`ParamWarning`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A parameter or object field nobody reads (the unknown-key rule, §12.2).
    UnknownKey,
    /// A key beside `array` in the `objects` document.
    UnknownObjectsKey,
    /// A known parameter that the selected identity mode does not use (quirk #16).
    IgnoredInMode {
        /// The reference's mode name (`PodIdentity`, `VMManagedIdentity`, ...).
        mode: &'static str,
    },
    /// A deprecated spelling that still works (quirk #23); report it at info level.
    Deprecated {
        /// The spelling to use instead.
        replacement: &'static str,
    },
}

/// A parameter that was accepted but deserves the user's attention: an unknown name (the
/// unknown-key rule, azure-behaviour.md §12.2), a parameter unused in the selected mode, or a
/// deprecated spelling. Never carries a parameter value. `Display` gives the full sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamWarning {
    /// The key as given.
    pub key: String,
    /// The closest known key, when one is within edit distance 2.
    pub suggestion: Option<String>,
    /// `Some(index)` when the key is inside an `objects` entry.
    pub object_index: Option<usize>,
    /// What the warning is about.
    pub kind: WarningKind,
}

impl ParamWarning {
    /// Human-readable hint.
    pub fn hint(&self) -> String {
        match (&self.kind, &self.suggestion) {
            (WarningKind::Deprecated { replacement }, _) => format!("use {replacement:?}"),
            (WarningKind::IgnoredInMode { mode }, _) => {
                format!("not used by identity mode {mode}; remove it")
            }
            (_, Some(s)) => format!("did you mean {s:?}?"),
            (_, None) => "not a parameter of rust-azure".to_owned(),
        }
    }
}

impl std::fmt::Display for ParamWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.key;
        match &self.kind {
            WarningKind::UnknownKey => {
                write!(f, "unknown parameter {key:?} ignored")?;
                if let Some(s) = &self.suggestion {
                    write!(f, "; did you mean {s:?}?")?;
                }
                if let Some(i) = self.object_index {
                    write!(f, " (objects entry at index {i})")?;
                }
                Ok(())
            }
            WarningKind::UnknownObjectsKey => {
                write!(f, "unknown key {key:?} in objects ignored")?;
                match &self.suggestion {
                    Some(s) => write!(f, "; did you mean {s:?}?"),
                    None => Ok(()),
                }
            }
            WarningKind::IgnoredInMode { mode } => write!(
                f,
                "parameter {key:?} is ignored in identity mode {mode}; remove it from the SecretProviderClass"
            ),
            WarningKind::Deprecated { replacement } => {
                write!(f, "parameter {key:?} is deprecated; use {replacement:?}")
            }
        }
    }
}

/// Parameters plus warnings.
#[derive(Clone, Debug)]
pub struct ParsedParams {
    /// The typed parameters.
    pub params: MountParams,
    /// Keys that were accepted but deserve a log line (see [`ParamWarning`]).
    pub warnings: Vec<ParamWarning>,
}

/// Why a vault name is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VaultNameProblem {
    /// Not 3–24 bytes long.
    #[error("must be between 3 and 24 chars")]
    Length,
    /// Contains a character other than ASCII letters, digits and `-`.
    #[error("must match [-a-zA-Z0-9]{{3,24}}")]
    Charset,
}

/// Invalid parameters or objects, or a missing prerequisite for the selected identity.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// A top-level key differs from a known parameter only in letter case (quirk #8).
    #[error(
        "unknown parameter {key:?}; did you mean {known:?}? parameter names are case-sensitive"
    )]
    KeyCase {
        /// The key as given.
        key: String,
        /// The known spelling.
        known: &'static str,
    },
    /// `csi.storage.k8s.io/pod.name` is empty.
    #[error(
        "pod name is not provided: the CSIDriver secrets-store.csi.k8s.io must set podInfoOnMount: true"
    )]
    PodNameMissing,
    /// `csi.storage.k8s.io/pod.namespace` is empty.
    #[error(
        "pod namespace is not provided: the CSIDriver secrets-store.csi.k8s.io must set podInfoOnMount: true"
    )]
    PodNamespaceMissing,
    /// A boolean parameter is not in Go `strconv.ParseBool` syntax.
    #[error(
        "failed to parse {key} flag, error: strconv.ParseBool: parsing {value:?}: invalid syntax; use \"true\" or \"false\""
    )]
    InvalidBool {
        /// The parameter name.
        key: &'static str,
        /// The value as given (a boolean text, not secret).
        value: String,
    },
    /// More than one of the identity flags is true.
    #[error(
        "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"
    )]
    MultipleModes,
    /// `keyvaultName` is empty and not every object names its own vault.
    #[error(
        "keyvaultName is not provided: set spec.parameters.keyvaultName in the SecretProviderClass, or keyvaultName in every entry of spec.parameters.objects"
    )]
    KeyvaultNameMissing,
    /// `keyvaultName` fails the reference's name check (quirk #22: checked up front).
    #[error(
        "failed to get vault: Invalid vault name: {name:?}, {problem}; set keyvaultName to the vault's name, not its URL"
    )]
    InvalidVaultName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: VaultNameProblem,
    },
    /// Neither `tenantID` nor `tenantId` is set.
    #[error(
        "tenantId is not provided: set spec.parameters.tenantID in the SecretProviderClass to the Entra ID tenant ID"
    )]
    TenantMissing,
    /// `cloudName` (or the process default) names no known cloud.
    #[error(
        "cloudName {name} is not valid, error: autorest/azure: There is no cloud environment matching the name {upper:?}; valid names are AzurePublicCloud, AzureCloud, AzureUSGovernmentCloud, AzureUSGovernment, AzureChinaCloud, AzureGermanCloud and AzureStackCloud"
    )]
    InvalidCloud {
        /// The name as given.
        name: String,
        /// The name upper-cased, as go-autorest reports it.
        upper: String,
    },
    /// The selected identity mode cannot be configured.
    #[error("failed to build auth config for mode {mode}: {source}")]
    Identity {
        /// The reference's mode name (`None`, `PodIdentity`, `VMManagedIdentity`, `AzureTokenProxy`).
        mode: &'static str,
        /// What is missing.
        #[source]
        source: IdentityError,
    },
    /// `objects` is empty.
    #[error("objects is not set: list the Key Vault objects to mount in spec.parameters.objects")]
    ObjectsMissing,
    /// `objects` is not the expected YAML shape.
    #[error("failed to yaml unmarshal objects, error: {source}")]
    ObjectsYaml {
        /// The parser's description (shape and position only).
        #[source]
        source: serde_norway::Error,
    },
    /// A key of the `objects` document differs from `array` only in letter case.
    #[error("unknown key {key:?} in objects; did you mean {known:?}? keys are case-sensitive")]
    ObjectsKeyCase {
        /// The key as given.
        key: String,
        /// The known spelling.
        known: &'static str,
    },
    /// `objects` lists nothing (quirk #3).
    #[error(
        "objects contains no entries: list at least one object under `array:` in spec.parameters.objects"
    )]
    ObjectsEmpty,
    /// One `objects` entry cannot be decoded.
    #[error("unmarshal failed for keyVaultObjects at index {index}, error: {problem}")]
    ObjectDecode {
        /// Position in `array`.
        index: usize,
        /// What is wrong.
        #[source]
        problem: DecodeProblem,
    },
    /// One object's fields are invalid.
    #[error(
        "failed to get objectType:{object_type}, objectName:{object_name}, objectVersion:{object_version}: {source}"
    )]
    Object {
        /// Position in `array`.
        index: usize,
        /// `objectType` as given (trimmed).
        object_type: String,
        /// `objectName` as given (trimmed).
        object_name: String,
        /// `objectVersion` as given (trimmed).
        object_version: String,
        /// What is wrong (boxed to keep `ParamsError` small).
        #[source]
        source: Box<ObjectError>,
    },
}

impl ParamsError {
    /// Class deciding the gRPC code.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Identity { source, .. } => source.class(),
            _ => ErrorClass::InvalidArgument,
        }
    }

    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyCase { .. } | Self::ObjectsKeyCase { .. } => "parameter_name_case",
            Self::InvalidVaultName { .. } => "vault_name_invalid",
            Self::InvalidCloud { .. } => "cloud_invalid",
            Self::Identity { source, .. } => source.code(),
            Self::ObjectsMissing
            | Self::ObjectsYaml { .. }
            | Self::ObjectDecode { .. }
            | Self::Object { .. } => "objects_invalid",
            Self::ObjectsEmpty => "objects_empty",
            Self::PodNameMissing
            | Self::PodNamespaceMissing
            | Self::InvalidBool { .. }
            | Self::MultipleModes
            | Self::KeyvaultNameMissing
            | Self::TenantMissing => "params_invalid",
        }
    }
}

/// Why one `objects` entry cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeProblem {
    /// Not a YAML mapping of scalar fields.
    #[error(transparent)]
    Yaml {
        /// The parser's description (shape and position only).
        source: serde_norway::Error,
    },
    /// A field name differs from a known field only in letter case (quirk #8).
    #[error(
        "unknown parameter {key:?}; did you mean {known:?}? parameter names are case-sensitive"
    )]
    KeyCase {
        /// The key as given.
        key: String,
        /// The known spelling.
        known: &'static str,
    },
    /// `objectVersionHistory` is not a whole number between 0 and 2147483647.
    #[error(
        "objectVersionHistory {value:?} is not valid: use a whole number of versions such as 2 (0 or 1 fetch a single version)"
    )]
    VersionHistory {
        /// The value as given.
        value: String,
    },
}

/// Why one object's fields are invalid.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// `objectType` differs from a valid type only in letter case (quirk #12).
    #[error("objectType {given:?} is not valid: object types are case-sensitive, use {expected:?}")]
    TypeCase {
        /// The type as given.
        given: String,
        /// The valid spelling.
        expected: &'static str,
    },
    /// `objectType` is not `secret`, `key` or `cert`.
    #[error("Invalid vaultObjectTypes. Should be secret, key, or cert")]
    InvalidType,
    /// `objectFormat` is neither `pem` nor `pfx`.
    #[error("invalid objectFormat: {value}, should be PEM or PFX")]
    InvalidFormat {
        /// The format as given.
        value: String,
    },
    /// `objectFormat: pfx` (any case) on a key or certificate (quirk #13).
    #[error("PFX format only supported for objectType: secret")]
    PfxNotSecret,
    /// `objectEncoding` on a key or certificate.
    #[error("objectEncoding only supported for objectType: secret")]
    EncodingNotSecret,
    /// `objectEncoding` is not `utf-8`, `hex` or `base64`.
    #[error("invalid objectEncoding: {value}, should be hex, base64 or utf-8")]
    InvalidEncoding {
        /// The encoding as given.
        value: String,
    },
    /// Neither `objectAlias` nor `objectName` gives a file name.
    #[error("file name must not be empty; set objectName (and optionally objectAlias)")]
    FileNameEmpty,
    /// The file name starts with `/`.
    #[error("file name must be a relative path; remove the leading '/'")]
    FileNameAbsolute,
    /// The file name contains `..` anywhere (the reference's rule; stricter than the driver's).
    #[error("file name must not contain '..'")]
    FileNameDotDot,
    /// The file name breaks one of the driver's path rules.
    #[error("file name {file_name:?} cannot be written by the driver: {source}")]
    FileNamePath {
        /// The file name (alias or object name).
        file_name: String,
        /// The rule it breaks.
        #[source]
        source: super::files::PathRuleError,
    },
    /// `objectName` is empty while an alias is set.
    #[error("objectName is not set; set it to the name of the object in Key Vault")]
    NameMissing,
    /// `filePermission` is not an octal mode in 0000–0777 (quirk #2).
    #[error(
        "object {object_name:?}: filePermission {value:?} is not a valid octal file mode (0000–0777)"
    )]
    FilePermission {
        /// `objectName`.
        object_name: String,
        /// The value as given.
        value: String,
    },
    /// The object's own `keyvaultName` fails the vault name check.
    #[error(
        "keyvaultName {name:?} is not valid: {problem}; set it to the vault's name, not its URL"
    )]
    InvalidVaultName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: VaultNameProblem,
    },
    /// `jmesPath` on a key or certificate.
    #[error(
        "jmesPath is only supported for objectType: secret (keys and certificates are not JSON)"
    )]
    JmesPathNotSecret,
    /// `jmesPath` together with `objectVersionHistory` above 1.
    #[error(
        "jmesPath cannot be combined with objectVersionHistory; mount the history with a second entry for the same object"
    )]
    JmesPathWithHistory,
    /// A `jmesPath` entry without `path`.
    #[error(
        "jmesPath[{entry}].path is not set; set it to a JMESPath expression such as `password` or `db.users[0].name`"
    )]
    JmesPathPathMissing {
        /// Position in `jmesPath`.
        entry: usize,
    },
    /// A `jmesPath` entry whose `path` does not compile.
    #[error("jmesPath[{entry}].path {path:?} is not a valid JMESPath expression: {source}")]
    JmesPathPathInvalid {
        /// Position in `jmesPath`.
        entry: usize,
        /// The expression as given.
        path: String,
        /// The parser's reason.
        #[source]
        source: crate::render::extract::ExpressionError,
    },
    /// A `jmesPath` entry without `objectAlias`.
    #[error(
        "jmesPath[{entry}].objectAlias is not set; every entry needs the name of the file it writes"
    )]
    JmesPathAliasMissing {
        /// Position in `jmesPath`.
        entry: usize,
    },
    /// A `jmesPath` entry's `objectAlias` breaks a file-name rule.
    #[error("jmesPath[{entry}].objectAlias: {source}")]
    JmesPathAlias {
        /// Position in `jmesPath`.
        entry: usize,
        /// The rule it breaks.
        #[source]
        source: Box<ObjectError>,
    },
    /// A `jmesPath` entry's `filePermission` is not an octal mode in 0000–0777.
    #[error(
        "jmesPath[{entry}].filePermission {value:?} is not a valid octal file mode (0000–0777)"
    )]
    JmesPathFilePermission {
        /// Position in `jmesPath`.
        entry: usize,
        /// The value as given.
        value: String,
    },
}

/// Why the selected identity mode cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Service-principal mode without nodePublishSecretRef.
    #[error(
        "failed to get credentials, nodePublishSecretRef secret is not set; reference a Secret with the keys clientid and clientsecret in the pod volume's nodePublishSecretRef, or set clientID for workload identity"
    )]
    SecretsMissing,
    /// The nodePublishSecretRef Secret has no (non-empty) `clientid`.
    #[error(
        "could not find clientid in secrets; add the key clientid to the nodePublishSecretRef Secret"
    )]
    ClientIdMissing,
    /// The nodePublishSecretRef Secret has no (non-empty) `clientsecret`.
    #[error(
        "could not find clientsecret in secrets; add the key clientsecret to the nodePublishSecretRef Secret"
    )]
    ClientSecretMissing,
    /// Workload identity without a usable token.
    #[error("failed to parse workload identity tokens, error: {0}")]
    WorkloadTokens(#[source] TokenError),
    /// Identity binding without `clientID`.
    #[error(
        "clientID is required for identity binding; set spec.parameters.clientID to the managed identity's client ID"
    )]
    BindingClientIdMissing,
    /// Identity binding without the tokens attribute.
    #[error(
        "service account tokens are required for identity binding; add tokenRequests: [{{audience: api://AKSIdentityBinding}}] to the CSIDriver secrets-store.csi.k8s.io"
    )]
    BindingTokensMissing,
    /// Identity binding without a usable token.
    #[error("failed to parse service account token for identity binding, error: {0}")]
    BindingToken(#[source] TokenError),
}

impl IdentityError {
    /// Class deciding the gRPC code.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::BindingClientIdMissing => ErrorClass::InvalidArgument,
            _ => ErrorClass::FailedPrecondition,
        }
    }

    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SecretsMissing | Self::ClientIdMissing | Self::ClientSecretMissing => {
                "credentials_missing"
            }
            Self::BindingClientIdMissing => "params_invalid",
            Self::BindingTokensMissing => "tokens_missing",
            Self::WorkloadTokens(e) | Self::BindingToken(e) => e.code(),
        }
    }
}

/// The service-account tokens attribute does not provide the needed token. Messages never
/// contain token material.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The attribute is absent or empty.
    #[error(
        "service account tokens not found; add tokenRequests: [{{audience: {audience}}}] to the CSIDriver secrets-store.csi.k8s.io"
    )]
    NotFound {
        /// The audience that was needed.
        audience: &'static str,
    },
    /// The attribute is not the expected JSON.
    #[error(
        "failed to unmarshal service account tokens, error: {detail}; the value must be the JSON kubelet writes for the CSIDriver's tokenRequests"
    )]
    Unmarshal {
        /// Category and position of the problem.
        detail: String,
        /// The audience that was needed.
        audience: &'static str,
    },
    /// No (non-empty) token for the audience.
    #[error(
        "token for audience {audience} not found; add tokenRequests: [{{audience: {audience}}}] to the CSIDriver secrets-store.csi.k8s.io"
    )]
    AudienceMissing {
        /// The audience that was needed.
        audience: &'static str,
    },
}

impl TokenError {
    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::AudienceMissing { .. } => "tokens_missing",
            Self::Unmarshal { .. } => "tokens_invalid",
        }
    }
}

/// Go `strconv.ParseBool` syntax; empty means false.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        _ => None,
    }
}

/// What is wrong with a vault name, if anything (the reference's check).
fn vault_name_problem(name: &str) -> Option<VaultNameProblem> {
    if !(3..=24).contains(&name.len()) {
        Some(VaultNameProblem::Length)
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Some(VaultNameProblem::Charset)
    } else {
        None
    }
}

fn validate_vault_name(name: &str) -> Result<(), ParamsError> {
    match vault_name_problem(name) {
        Some(problem) => Err(ParamsError::InvalidVaultName {
            name: name.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// The unknown-key rule for top-level keys: case variants fail, other unknown keys warn.
fn check_parameter_names(
    input: &MountInput,
    warnings: &mut Vec<ParamWarning>,
) -> Result<(), ParamsError> {
    for key in input.attributes.keys() {
        match check_key(key, KNOWN_PARAMETERS, |k| k.starts_with(DRIVER_KEY_PREFIX)) {
            KeyCheck::Known => {}
            KeyCheck::CaseVariant(known) => {
                return Err(ParamsError::KeyCase {
                    key: key.to_owned(),
                    known,
                });
            }
            KeyCheck::Unknown(suggestion) => warnings.push(ParamWarning {
                key: key.to_owned(),
                suggestion: suggestion.map(str::to_owned),
                object_index: None,
                kind: WarningKind::UnknownKey,
            }),
        }
    }
    Ok(())
}

/// Parses and validates the parameters of a Mount.
///
/// No network or file I/O happens here; the custom cloud file (`cloudEnvFileName`) is only named.
///
/// # Errors
/// [`ParamsError`] for the first problem found, in the reference's order (azure-behaviour.md
/// §1.1) with case-variant parameter names checked first and the vault name checked right after
/// its presence.
pub fn parse_params(
    input: &MountInput,
    options: &MountOptions,
) -> Result<ParsedParams, ParamsError> {
    let mut warnings = Vec::new();
    check_parameter_names(input, &mut warnings)?;
    let get = |key: &str| input.attributes.get(key).map_or("", str::trim);

    let pod_name = get(POD_NAME_KEY);
    if pod_name.is_empty() {
        return Err(ParamsError::PodNameMissing);
    }
    let pod_namespace = get(POD_NAMESPACE_KEY);
    if pod_namespace.is_empty() {
        return Err(ParamsError::PodNamespaceMissing);
    }

    let mut flag = ModeFlag::None;
    let mut enabled = 0;
    for (key, mode) in [
        (USE_POD_IDENTITY, ModeFlag::PodIdentity),
        (USE_VM_MANAGED_IDENTITY, ModeFlag::VmManagedIdentity),
        (USE_AZURE_TOKEN_PROXY, ModeFlag::AzureTokenProxy),
    ] {
        let value = get(key);
        let on = parse_go_bool(value).ok_or_else(|| ParamsError::InvalidBool {
            key,
            value: value.to_owned(),
        })?;
        if on {
            flag = mode;
            enabled += 1;
        }
    }
    if enabled > 1 {
        return Err(ParamsError::MultipleModes);
    }

    // Only emptiness is judged on the trimmed text: trimming the start of a YAML document would
    // shift its first line against the others and can break or change the structure.
    let objects_text = input.attributes.get(OBJECTS).unwrap_or("");
    let keyvault_name = get(KEYVAULT_NAME);
    if keyvault_name.is_empty() {
        // The class may leave out its vault when every object names one. The objects are parsed
        // here only to see that (their warnings and errors come from the parse below); when an
        // entry is invalid, the valid ones decide, so its own error is reported rather than this.
        let every_object_names_a_vault = objects::parse_objects_all(objects_text, &mut Vec::new())
            .is_ok_and(|(specs, errors)| {
                specs.iter().all(|s| s.keyvault_name.is_some())
                    && (!specs.is_empty()
                        || errors.iter().any(|e| {
                            matches!(e, ParamsError::Object { source, .. }
                                if matches!(**source, ObjectError::InvalidVaultName { .. }))
                        }))
            });
        if !every_object_names_a_vault {
            return Err(ParamsError::KeyvaultNameMissing);
        }
    } else {
        validate_vault_name(keyvault_name)?;
    }

    let legacy_tenant = get(TENANT_ID_LEGACY);
    if !legacy_tenant.is_empty() {
        warnings.push(ParamWarning {
            key: TENANT_ID_LEGACY.to_owned(),
            suggestion: Some(TENANT_ID.to_owned()),
            object_index: None,
            kind: WarningKind::Deprecated {
                replacement: TENANT_ID,
            },
        });
    }
    let tenant_id = match get(TENANT_ID) {
        "" => legacy_tenant,
        preferred => preferred,
    };
    if tenant_id.is_empty() {
        return Err(ParamsError::TenantMissing);
    }

    let cloud_given = match get(CLOUD_NAME) {
        "" => options.default_cloud.trim(),
        name => name,
    };
    let cloud_name =
        canonical_cloud_name(cloud_given).ok_or_else(|| ParamsError::InvalidCloud {
            name: cloud_given.to_owned(),
            upper: cloud_given.to_uppercase(),
        })?;
    let cloud_env_file_name = Some(get(CLOUD_ENV_FILE_NAME))
        .filter(|f| !f.is_empty())
        .map(str::to_owned);

    let identity = identity::select_identity(
        flag,
        get(CLIENT_ID),
        get(USER_ASSIGNED_IDENTITY_ID),
        input,
        &mut warnings,
    )
    .map_err(|source| ParamsError::Identity {
        mode: flag.reference_name(),
        source,
    })?;

    if objects_text.trim().is_empty() {
        return Err(ParamsError::ObjectsMissing);
    }
    let objects = objects::parse_objects(objects_text, &mut warnings)?;

    Ok(ParsedParams {
        params: MountParams {
            keyvault_name: (!keyvault_name.is_empty()).then(|| keyvault_name.to_owned()),
            tenant_id: tenant_id.to_owned(),
            cloud_name: cloud_name.to_owned(),
            cloud_env_file_name,
            identity,
            pod_name: pod_name.to_owned(),
            pod_namespace: pod_namespace.to_owned(),
            pod_uid: get(POD_UID_KEY).to_owned(),
            default_mode: input.default_mode,
            objects,
        },
        warnings,
    })
}

/// Every problem of the `objects` parameter, not only the first (`validate` reports them all):
/// the specs of the valid entries and the errors of the others.
///
/// # Errors
/// A problem of the whole document (missing, not YAML, no entries), which hides the entries.
pub fn check_objects(
    text: &str,
    warnings: &mut Vec<ParamWarning>,
) -> Result<(Vec<ObjectSpec>, Vec<ParamsError>), ParamsError> {
    if text.trim().is_empty() {
        return Err(ParamsError::ObjectsMissing);
    }
    objects::parse_objects_all(text, warnings)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::mount::request::{Attributes, SecretMap, TOKENS_KEY};

    const ONE_SECRET: &str = "array:\n  - |\n    objectName: s1\n    objectType: secret\n";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.hunter2-token.sig";

    fn options() -> MountOptions {
        MountOptions {
            default_cloud: "AzurePublicCloud".into(),
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
        }
    }

    /// Attributes of a valid VM managed identity Mount, with `overrides` applied
    /// (an empty value removes the key).
    fn attrs(overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            (POD_NAME_KEY, "pod-1"),
            (POD_NAMESPACE_KEY, "ns-1"),
            (KEYVAULT_NAME, "kv-name"),
            (TENANT_ID, "tenant-1"),
            (USE_VM_MANAGED_IDENTITY, "true"),
            (OBJECTS, ONE_SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in overrides {
            if v.is_empty() {
                m.remove(*k);
            } else {
                m.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        m
    }

    fn input_with(
        attributes: BTreeMap<String, String>,
        tokens: Option<&str>,
        secrets: Option<&[(&str, &str)]>,
    ) -> MountInput {
        MountInput {
            attributes: Attributes::from_map(attributes),
            service_account_tokens: tokens.map(SecretString::from),
            secrets: secrets.map(|s| {
                SecretMap::from_map(
                    s.iter()
                        .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
                        .collect(),
                )
            }),
            default_mode: 0o644,
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".into(),
            current_object_versions: vec![],
        }
    }

    fn parse(overrides: &[(&str, &str)]) -> Result<ParsedParams, ParamsError> {
        parse_params(&input_with(attrs(overrides), None, None), &options())
    }

    fn ok(overrides: &[(&str, &str)]) -> ParsedParams {
        match parse(overrides) {
            Ok(p) => p,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(overrides: &[(&str, &str)]) -> ParamsError {
        match parse(overrides) {
            Ok(p) => panic!("unexpected success: {:?}", p.params),
            Err(e) => e,
        }
    }

    fn objects(yaml: &str) -> Result<ParsedParams, ParamsError> {
        parse(&[(OBJECTS, yaml)])
    }

    fn object_err(yaml: &str) -> String {
        match objects(yaml) {
            Ok(p) => panic!("unexpected success: {:?}", p.params.objects),
            Err(e) => e.to_string(),
        }
    }

    fn one_object(fields: &str) -> Result<ObjectSpec, ParamsError> {
        let indented: String = fields.lines().map(|l| format!("    {l}\n")).collect();
        let yaml = format!("array:\n  - |\n{indented}");
        objects(&yaml).map(|mut p| p.params.objects.remove(0))
    }

    fn one_object_err(fields: &str) -> String {
        match one_object(fields) {
            Ok(o) => panic!("unexpected success: {o:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn single(name: &str, typ: &str, version: &str, err: &str) -> String {
        format!("failed to get objectType:{typ}, objectName:{name}, objectVersion:{version}: {err}")
    }

    // ---- validation order and top-level parameters ----

    #[test]
    fn valid_minimal_params() {
        let p = ok(&[(POD_UID_KEY, "uid-1")]);
        let m = &p.params;
        assert_eq!(m.keyvault_name.as_deref(), Some("kv-name"));
        assert_eq!(m.tenant_id, "tenant-1");
        assert_eq!(m.cloud_name, "AzurePublicCloud");
        assert_eq!(m.cloud_env_file_name, None);
        assert_eq!(m.pod_name, "pod-1");
        assert_eq!(m.pod_namespace, "ns-1");
        assert_eq!(m.pod_uid, "uid-1");
        assert_eq!(m.default_mode, 0o644);
        assert!(matches!(
            m.identity,
            IdentityMode::VmManagedIdentity {
                user_assigned: None
            }
        ));
        assert_eq!(m.objects, vec![ObjectSpec::secret("s1")]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn order_follows_the_reference() {
        // Everything missing: the pod name is reported first.
        let e = parse_params(&input_with(BTreeMap::new(), None, None), &options()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pod name is not provided: the CSIDriver secrets-store.csi.k8s.io must set podInfoOnMount: true"
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(POD_NAMESPACE_KEY, ""), (KEYVAULT_NAME, "")],
                "pod namespace is not provided",
            ),
            (
                &[(USE_POD_IDENTITY, "yes"), (KEYVAULT_NAME, "")],
                "failed to parse usePodIdentity flag",
            ),
            (
                &[(USE_POD_IDENTITY, "true"), (KEYVAULT_NAME, "")],
                "only one identity mode",
            ),
            (
                &[(KEYVAULT_NAME, ""), (TENANT_ID, "")],
                "keyvaultName is not provided",
            ),
            (
                &[(KEYVAULT_NAME, "k"), (TENANT_ID, "")],
                "failed to get vault",
            ),
            (
                &[(TENANT_ID, ""), (CLOUD_NAME, "Mars")],
                "tenantId is not provided",
            ),
            (&[(CLOUD_NAME, "Mars"), (OBJECTS, "")], "cloudName Mars"),
            (
                &[(USE_VM_MANAGED_IDENTITY, ""), (OBJECTS, "")],
                "failed to build auth config for mode None",
            ),
            (&[(OBJECTS, "")], "objects is not set"),
        ];
        for (overrides, prefix) in cases {
            let e = err(overrides).to_string();
            assert!(e.starts_with(prefix), "{overrides:?}: {e}");
        }
    }

    #[test]
    fn pod_fields_are_trimmed_and_required() {
        assert_eq!(
            err(&[(POD_NAME_KEY, "  ")]).to_string(),
            "pod name is not provided: the CSIDriver secrets-store.csi.k8s.io must set podInfoOnMount: true"
        );
        assert_eq!(
            err(&[(POD_NAMESPACE_KEY, " \t")]).to_string(),
            "pod namespace is not provided: the CSIDriver secrets-store.csi.k8s.io must set podInfoOnMount: true"
        );
        assert_eq!(ok(&[(POD_NAME_KEY, " p ")]).params.pod_name, "p");
    }

    #[test]
    fn booleans_use_go_parse_bool_syntax() {
        for t in ["1", "t", "T", "TRUE", "true", "True", " true "] {
            let p = ok(&[(USE_VM_MANAGED_IDENTITY, ""), (USE_POD_IDENTITY, t)]);
            assert!(
                matches!(p.params.identity, IdentityMode::PodIdentity),
                "{t}"
            );
        }
        for f in ["0", "f", "F", "FALSE", "false", "False", "", "  "] {
            let p = ok(&[(USE_POD_IDENTITY, f)]);
            assert!(
                matches!(p.params.identity, IdentityMode::VmManagedIdentity { .. }),
                "{f:?}"
            );
        }
        for (key, bad) in [
            (USE_POD_IDENTITY, "yes"),
            (USE_VM_MANAGED_IDENTITY, "tRUE"),
            (USE_AZURE_TOKEN_PROXY, "on"),
            (USE_POD_IDENTITY, "2"),
        ] {
            let e = err(&[(key, bad)]);
            assert_eq!(
                e.to_string(),
                format!(
                    "failed to parse {key} flag, error: strconv.ParseBool: parsing \"{bad}\": invalid syntax; use \"true\" or \"false\""
                )
            );
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
            assert_eq!(e.code(), "params_invalid");
        }
    }

    #[test]
    fn at_most_one_mode() {
        for pair in [
            [
                (USE_POD_IDENTITY, "true"),
                (USE_VM_MANAGED_IDENTITY, "true"),
            ],
            [(USE_AZURE_TOKEN_PROXY, "1"), (USE_VM_MANAGED_IDENTITY, "T")],
            [(USE_AZURE_TOKEN_PROXY, "true"), (USE_POD_IDENTITY, "true")],
        ] {
            assert_eq!(
                err(&pair).to_string(),
                "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"
            );
        }
    }

    #[test]
    fn keyvault_name_rules() {
        assert_eq!(
            err(&[(KEYVAULT_NAME, " ")]).to_string(),
            "keyvaultName is not provided: set spec.parameters.keyvaultName in the SecretProviderClass, or keyvaultName in every entry of spec.parameters.objects"
        );
        for (name, problem) in [
            ("ab", "must be between 3 and 24 chars"),
            (
                "a234567890123456789012345",
                "must be between 3 and 24 chars",
            ),
            ("kv.vault.azure.net", "must match [-a-zA-Z0-9]{3,24}"),
            ("kv_name", "must match [-a-zA-Z0-9]{3,24}"),
            ("kvé", "must match [-a-zA-Z0-9]{3,24}"),
        ] {
            let e = err(&[(KEYVAULT_NAME, name)]);
            assert_eq!(
                e.to_string(),
                format!(
                    "failed to get vault: Invalid vault name: \"{name}\", {problem}; set keyvaultName to the vault's name, not its URL"
                )
            );
            assert_eq!(e.code(), "vault_name_invalid");
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
        }
        // No other Key Vault naming rule is enforced.
        for name in ["abc", "1kv", "a--b-", "A23456789012345678901234", " kv1 "] {
            assert_eq!(
                ok(&[(KEYVAULT_NAME, name)]).params.keyvault_name.as_deref(),
                Some(name.trim())
            );
        }
    }

    #[test]
    fn tenant_spellings() {
        let e = err(&[(TENANT_ID, "")]);
        assert_eq!(
            e.to_string(),
            "tenantId is not provided: set spec.parameters.tenantID in the SecretProviderClass to the Entra ID tenant ID"
        );
        let p = ok(&[(TENANT_ID, ""), (TENANT_ID_LEGACY, "legacy")]);
        assert_eq!(p.params.tenant_id, "legacy");
        assert_eq!(
            p.warnings,
            vec![ParamWarning {
                key: "tenantId".into(),
                suggestion: Some("tenantID".into()),
                object_index: None,
                kind: WarningKind::Deprecated {
                    replacement: "tenantID"
                },
            }]
        );
        assert_eq!(
            p.warnings[0].to_string(),
            "parameter \"tenantId\" is deprecated; use \"tenantID\""
        );
        let p = ok(&[(TENANT_ID, "new"), (TENANT_ID_LEGACY, "old")]);
        assert_eq!(p.params.tenant_id, "new");
    }

    #[test]
    fn cloud_names() {
        for (given, canonical) in [
            ("AzurePublicCloud", "AzurePublicCloud"),
            ("azurecloud", "AzurePublicCloud"),
            ("AZUREUSGOVERNMENTCLOUD", "AzureUSGovernmentCloud"),
            ("AzureUSGovernment", "AzureUSGovernmentCloud"),
            ("AzureChinaCloud", "AzureChinaCloud"),
            ("azuregermancloud", "AzureGermanCloud"),
            (" AzureStackCloud ", "AzureStackCloud"),
        ] {
            assert_eq!(ok(&[(CLOUD_NAME, given)]).params.cloud_name, canonical);
        }
        let e = err(&[(CLOUD_NAME, "AzurePublic")]);
        assert_eq!(
            e.to_string(),
            "cloudName AzurePublic is not valid, error: autorest/azure: There is no cloud environment matching the name \"AZUREPUBLIC\"; valid names are AzurePublicCloud, AzureCloud, AzureUSGovernmentCloud, AzureUSGovernment, AzureChinaCloud, AzureGermanCloud and AzureStackCloud"
        );
        assert_eq!(e.code(), "cloud_invalid");
        assert_eq!(e.class(), ErrorClass::InvalidArgument);

        let mut opts = options();
        opts.default_cloud = "AzureChinaCloud".into();
        let p = parse_params(&input_with(attrs(&[]), None, None), &opts).unwrap();
        assert_eq!(p.params.cloud_name, "AzureChinaCloud");
        opts.default_cloud = "Nowhere".into();
        let e = parse_params(&input_with(attrs(&[]), None, None), &opts).unwrap_err();
        assert!(matches!(e, ParamsError::InvalidCloud { .. }), "{e}");

        let p = ok(&[
            (CLOUD_NAME, "AzureStackCloud"),
            (CLOUD_ENV_FILE_NAME, " /etc/kubernetes/custom.json "),
        ]);
        assert_eq!(
            p.params.cloud_env_file_name.as_deref(),
            Some("/etc/kubernetes/custom.json")
        );
    }

    // ---- unknown-key rule ----

    #[test]
    fn case_variant_parameter_names_are_errors() {
        for (key, known) in [
            ("userAssignedIdentityId", "userAssignedIdentityID"),
            ("keyVaultName", "keyvaultName"),
            ("clientId", "clientID"),
            ("tenantid", "tenantID"),
            ("Objects", "objects"),
        ] {
            let e = err(&[(key, "x")]);
            assert_eq!(
                e.to_string(),
                format!(
                    "unknown parameter \"{key}\"; did you mean \"{known}\"? parameter names are case-sensitive"
                )
            );
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
            assert_eq!(e.code(), "parameter_name_case");
        }
    }

    #[test]
    fn unknown_parameter_names_warn() {
        let p = ok(&[
            ("resourceGroup", "rg"),
            ("subscriptionId", "sub"),
            ("keyvaultNam", "x"),
            ("secretProviderClass", "spc"),
            ("providerName", "p"),
            ("csi.storage.k8s.io/ephemeral", "true"),
            ("csi.storage.k8s.io/serviceAccount.name", "sa"),
        ]);
        let texts: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            vec![
                "unknown parameter \"keyvaultNam\" ignored; did you mean \"keyvaultName\"?",
                "unknown parameter \"resourceGroup\" ignored",
                "unknown parameter \"subscriptionId\" ignored",
            ]
        );
        assert_eq!(p.warnings[0].hint(), "did you mean \"keyvaultName\"?");
        assert_eq!(p.warnings[1].hint(), "not a parameter of rust-azure");
        assert!(p.warnings.iter().all(|w| w.kind == WarningKind::UnknownKey));
    }

    #[test]
    fn object_field_names_follow_the_rule() {
        let e = one_object_err("objectname: a\nobjectType: secret");
        assert_eq!(
            e,
            "unmarshal failed for keyVaultObjects at index 0, error: unknown parameter \"objectname\"; did you mean \"objectName\"? parameter names are case-sensitive"
        );
        let p = objects(
            "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectType: secret\n    objectAliass: c\n    color: red\n",
        )
        .unwrap();
        assert_eq!(p.params.objects[1].object_alias, None);
        assert_eq!(
            p.warnings,
            vec![
                ParamWarning {
                    key: "objectAliass".into(),
                    suggestion: Some("objectAlias".into()),
                    object_index: Some(1),
                    kind: WarningKind::UnknownKey,
                },
                ParamWarning {
                    key: "color".into(),
                    suggestion: None,
                    object_index: Some(1),
                    kind: WarningKind::UnknownKey,
                },
            ]
        );
        assert_eq!(
            p.warnings[0].to_string(),
            "unknown parameter \"objectAliass\" ignored; did you mean \"objectAlias\"? (objects entry at index 1)"
        );
    }

    #[test]
    fn objects_document_keys() {
        let e = object_err("Array:\n  - |\n    objectName: a\n    objectType: secret\n");
        assert_eq!(
            e,
            "unknown key \"Array\" in objects; did you mean \"array\"? keys are case-sensitive"
        );
        let p = objects(&format!("{ONE_SECRET}arry: []\n")).unwrap();
        assert_eq!(
            p.warnings[0].to_string(),
            "unknown key \"arry\" in objects ignored; did you mean \"array\"?"
        );
    }

    // ---- identity ----

    fn wi_attrs(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut o = vec![(USE_VM_MANAGED_IDENTITY, ""), (CLIENT_ID, "app-1")];
        o.extend_from_slice(extra);
        attrs(&o)
    }

    fn tokens_json(audience: &str) -> String {
        format!(
            r#"{{"{audience}":{{"token":"{JWT}","expirationTimestamp":"2026-05-01T10:00:00Z"}}}}"#
        )
    }

    fn parse_input(i: &MountInput) -> Result<ParsedParams, ParamsError> {
        parse_params(i, &options())
    }

    #[test]
    fn service_principal_credentials() {
        let a = attrs(&[(USE_VM_MANAGED_IDENTITY, "")]);
        let e = parse_input(&input_with(a.clone(), None, None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set; reference a Secret with the keys clientid and clientsecret in the pod volume's nodePublishSecretRef, or set clientID for workload identity"
        );
        assert_eq!(e.class(), ErrorClass::FailedPrecondition);
        assert_eq!(e.code(), "credentials_missing");

        let e = parse_input(&input_with(a.clone(), None, Some(&[]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to build auth config for mode None: could not find clientid in secrets; add the key clientid to the nodePublishSecretRef Secret"
        );
        assert_eq!(e.class(), ErrorClass::FailedPrecondition);
        let e = parse_input(&input_with(a.clone(), None, Some(&[("clientid", " ")]))).unwrap_err();
        assert!(
            e.to_string().contains("could not find clientid in secrets"),
            "{e}"
        );
        let e = parse_input(&input_with(a.clone(), None, Some(&[("clientid", "id")]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to build auth config for mode None: could not find clientsecret in secrets; add the key clientsecret to the nodePublishSecretRef Secret"
        );
        assert_eq!(e.code(), "credentials_missing");

        let p = parse_input(&input_with(
            a,
            None,
            Some(&[
                ("ClientID", " id-1\n"),
                ("CLIENTSECRET", "hunter2-secret\n"),
                ("other", "x"),
            ]),
        ))
        .unwrap();
        match &p.params.identity {
            IdentityMode::ServicePrincipal {
                client_id,
                client_secret,
            } => {
                assert_eq!(client_id, "id-1");
                assert_eq!(client_secret.expose(), "hunter2-secret");
            }
            other => panic!("wrong mode {other:?}"),
        }
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn workload_identity_tokens() {
        let json = tokens_json(WORKLOAD_IDENTITY_AUDIENCE);
        let p = parse_input(&input_with(wi_attrs(&[]), Some(&json), None)).unwrap();
        match &p.params.identity {
            IdentityMode::WorkloadIdentity {
                client_id,
                service_account_token,
            } => {
                assert_eq!(client_id, "app-1");
                assert_eq!(service_account_token.expose(), JWT);
            }
            other => panic!("wrong mode {other:?}"),
        }
        assert!(!format!("{p:?}").contains("hunter2"));

        // Kubernetes 1.35+: tokens inside `secrets`, even with service-principal keys present.
        let p = parse_input(&input_with(
            wi_attrs(&[]),
            None,
            Some(&[
                (TOKENS_KEY, &json),
                ("clientid", "x"),
                ("clientsecret", "y"),
            ]),
        ))
        .unwrap();
        assert!(matches!(
            p.params.identity,
            IdentityMode::WorkloadIdentity { .. }
        ));
        // The attribute wins over the secrets copy.
        let other = tokens_json("api://other");
        let p = parse_input(&input_with(
            wi_attrs(&[]),
            Some(&json),
            Some(&[(TOKENS_KEY, &other)]),
        ))
        .unwrap();
        assert!(matches!(
            p.params.identity,
            IdentityMode::WorkloadIdentity { .. }
        ));
    }

    #[test]
    fn workload_identity_token_errors() {
        let hint = "add tokenRequests: [{audience: api://AzureADTokenExchange}] to the CSIDriver secrets-store.csi.k8s.io";
        let prefix = "failed to build auth config for mode None: failed to parse workload identity tokens, error: ";
        let cases: Vec<(Option<String>, String, &str)> = vec![
            (None, format!("service account tokens not found; {hint}"), "tokens_missing"),
            (Some(" ".into()), format!("service account tokens not found; {hint}"), "tokens_missing"),
            (
                Some(format!("{{\"x\": \"{JWT}\"")),
                "failed to unmarshal service account tokens, error: ".to_owned(),
                "tokens_invalid",
            ),
            (
                Some(format!("[\"{JWT}\"]")),
                "failed to unmarshal service account tokens, error: unexpected value type".to_owned(),
                "tokens_invalid",
            ),
            (
                Some(format!(
                    r#"{{"api://AzureADTokenExchange":{{"token":"{JWT}","expirationTimestamp":"soon"}}}}"#
                )),
                "failed to unmarshal service account tokens, error: an expirationTimestamp is not an RFC 3339 time".to_owned(),
                "tokens_invalid",
            ),
            (
                Some(tokens_json("api://AKSIdentityBinding")),
                format!("token for audience api://AzureADTokenExchange not found; {hint}"),
                "tokens_missing",
            ),
            (
                Some(r#"{"api://AzureADTokenExchange":{"token":""}}"#.into()),
                format!("token for audience api://AzureADTokenExchange not found; {hint}"),
                "tokens_missing",
            ),
            (
                Some(r#"{"api://AzureADTokenExchange":{"token":null}}"#.into()),
                format!("token for audience api://AzureADTokenExchange not found; {hint}"),
                "tokens_missing",
            ),
        ];
        for (tokens, expected, code) in cases {
            // With clientID set, service-principal secrets are never a fallback.
            let i = input_with(
                wi_attrs(&[]),
                tokens.as_deref(),
                Some(&[("clientid", "a"), ("clientsecret", "b")]),
            );
            let e = parse_input(&i).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{prefix}{expected}")),
                "{tokens:?}: {text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
            assert_eq!(e.class(), ErrorClass::FailedPrecondition);
            assert_eq!(e.code(), code, "{text}");
        }
    }

    #[test]
    fn client_id_is_ignored_in_pod_and_vm_modes() {
        // Quirk #16: bogus tokens do not fail these modes.
        for (flag, mode) in [
            (USE_POD_IDENTITY, "PodIdentity"),
            (USE_VM_MANAGED_IDENTITY, "VMManagedIdentity"),
        ] {
            let a = attrs(&[
                (USE_VM_MANAGED_IDENTITY, ""),
                (flag, "true"),
                (CLIENT_ID, "app"),
            ]);
            let p = parse_input(&input_with(a, Some("not json"), None)).unwrap();
            assert_eq!(
                p.warnings,
                vec![ParamWarning {
                    key: "clientID".into(),
                    suggestion: None,
                    object_index: None,
                    kind: WarningKind::IgnoredInMode { mode },
                }]
            );
            assert_eq!(
                p.warnings[0].to_string(),
                format!(
                    "parameter \"clientID\" is ignored in identity mode {mode}; remove it from the SecretProviderClass"
                )
            );
        }
    }

    #[test]
    fn vm_managed_identity_user_assigned() {
        let p = ok(&[(USER_ASSIGNED_IDENTITY_ID, " 1111-2222 ")]);
        assert!(matches!(
            &p.params.identity,
            IdentityMode::VmManagedIdentity { user_assigned: Some(UserAssignedIdentity::ClientId(id)) } if id == "1111-2222"
        ));
        let rid = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi";
        let p = ok(&[(USER_ASSIGNED_IDENTITY_ID, rid)]);
        assert!(matches!(
            &p.params.identity,
            IdentityMode::VmManagedIdentity { user_assigned: Some(UserAssignedIdentity::ResourceId(id)) } if id == rid
        ));
        // Ignored (with a warning) in other modes.
        let p = ok(&[
            (USE_VM_MANAGED_IDENTITY, ""),
            (USE_POD_IDENTITY, "true"),
            (USER_ASSIGNED_IDENTITY_ID, "x"),
        ]);
        assert_eq!(p.warnings[0].key, "userAssignedIdentityID");
    }

    #[test]
    fn identity_binding() {
        let base = [
            (USE_VM_MANAGED_IDENTITY, ""),
            (USE_AZURE_TOKEN_PROXY, "true"),
        ];
        let json = tokens_json(IDENTITY_BINDING_AUDIENCE);
        let prefix = "failed to build auth config for mode AzureTokenProxy: ";

        let e = parse_input(&input_with(attrs(&base), Some(&json), None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{prefix}clientID is required for identity binding; set spec.parameters.clientID to the managed identity's client ID"
            )
        );
        assert_eq!(e.class(), ErrorClass::InvalidArgument);

        let mut a = base.to_vec();
        a.push((CLIENT_ID, "mi-1"));
        let e = parse_input(&input_with(attrs(&a), None, None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{prefix}service account tokens are required for identity binding; add tokenRequests: [{{audience: api://AKSIdentityBinding}}] to the CSIDriver secrets-store.csi.k8s.io"
            )
        );
        assert_eq!(e.class(), ErrorClass::FailedPrecondition);
        assert_eq!(e.code(), "tokens_missing");

        let wrong = tokens_json(WORKLOAD_IDENTITY_AUDIENCE);
        let e = parse_input(&input_with(attrs(&a), Some(&wrong), None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{prefix}failed to parse service account token for identity binding, error: token for audience api://AKSIdentityBinding not found; add tokenRequests: [{{audience: api://AKSIdentityBinding}}] to the CSIDriver secrets-store.csi.k8s.io"
            )
        );
        assert_eq!(e.class(), ErrorClass::FailedPrecondition);

        let p = parse_input(&input_with(attrs(&a), Some(&json), None)).unwrap();
        match &p.params.identity {
            IdentityMode::AzureTokenProxy {
                client_id,
                service_account_token,
            } => {
                assert_eq!(client_id, "mi-1");
                assert_eq!(service_account_token.expose(), JWT);
            }
            other => panic!("wrong mode {other:?}"),
        }
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    // ---- objects ----

    #[test]
    fn objects_missing_or_empty() {
        for blank in ["", "  \n\t"] {
            let e = err(&[(OBJECTS, blank)]);
            if blank.is_empty() {
                // An empty override removes the key.
                assert!(matches!(e, ParamsError::ObjectsMissing));
            }
            assert_eq!(
                e.to_string(),
                "objects is not set: list the Key Vault objects to mount in spec.parameters.objects"
            );
        }
        for empty in [
            "array:",
            "array: []",
            "array: ~",
            "other: 1",
            "~",
            "{}",
            "# only a comment",
        ] {
            let e = objects(empty).unwrap_err();
            assert_eq!(
                e.to_string(),
                "objects contains no entries: list at least one object under `array:` in spec.parameters.objects",
                "{empty}"
            );
            assert_eq!(e.code(), "objects_empty");
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
        }
    }

    #[test]
    fn objects_shape_errors() {
        let cases = [
            ("- |\n  objectName: a\n", "found a list at the top level"),
            ("just text", "found a single value at the top level"),
            (
                "array: x",
                "found a single value; `array` must be a list of strings",
            ),
            (
                "array: {a: b}",
                "found a mapping; `array` must be a list of strings",
            ),
            ("array: [[a]]", "invalid type: sequence"),
            ("array:\n  - objectName: a\n", "invalid type: map"),
            (
                "array: [\"x\"]\narray: [\"y\"]",
                "mapping key `array` is defined more than once",
            ),
            ("array: [\n", "line"),
            ("array:\n\t- x", "line"),
        ];
        for (yaml, needle) in cases {
            let e = objects(yaml).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with("failed to yaml unmarshal objects, error: "),
                "{yaml:?}: {text}"
            );
            assert!(text.contains(needle), "{yaml:?}: {text}");
            assert_eq!(e.code(), "objects_invalid");
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
        }
    }

    #[test]
    fn object_entry_shape_errors() {
        let cases = [
            (
                "array: [\"- a\"]",
                "found a list; each entry must be a YAML mapping",
            ),
            (
                "array: [\"plain\"]",
                "found a single value; each entry must be a YAML mapping",
            ),
            (
                "array: [\"123\"]",
                "found a single value; each entry must be a YAML mapping",
            ),
            ("array: [\"objectName: [a]\"]", "invalid type: sequence"),
            ("array: [\"objectName: {a: 1}\"]", "invalid type: map"),
            (
                "array: [\"objectName: a\\nobjectName: b\"]",
                "mapping key \"objectName\" is defined more than once",
            ),
            ("array: [\"objectName: [\"]", "line"),
        ];
        for (yaml, needle) in cases {
            let text = object_err(yaml);
            assert!(
                text.starts_with("unmarshal failed for keyVaultObjects at index 0, error: "),
                "{yaml:?}: {text}"
            );
            assert!(text.contains(needle), "{yaml:?}: {text}");
        }
        // Index of the failing entry.
        let text =
            object_err("array:\n  - |\n    objectName: a\n    objectType: secret\n  - \"x\"\n");
        assert!(
            text.starts_with("unmarshal failed for keyVaultObjects at index 1,"),
            "{text}"
        );
    }

    #[test]
    fn yaml_errors_do_not_echo_content() {
        let marker = "hunter2marker";
        for yaml in [
            marker.to_owned(),
            format!("array: {marker}"),
            format!("array: [\"{marker}\"]"),
            format!("array: [\"- {marker}\"]"),
            format!("array: {{{marker}: 1}}"),
            format!("- {marker}"),
            format!("array: [\"objectName: [{marker}]\"]"),
            format!("array: [\"objectName: {{{marker}: 1}}\"]"),
            format!(
                "array:\n  - |\n    objectName: x\n    objectType: secret\n    filePermission: [{marker}]\n"
            ),
            format!("{marker}: [\n"),
            format!("array: [\"{marker}: [\"]"),
            format!("array: 5\n{marker}"),
        ] {
            let text = object_err(&yaml);
            assert!(!text.contains(marker), "{yaml:?}: {text}");
        }
    }

    #[test]
    fn objects_text_is_not_trimmed_before_parsing() {
        // Trimming would leave `other` indented deeper than `array` and break the document.
        let p = objects(
            "  array:\n    - |\n      objectName: a\n      objectType: secret\n  other: 1\n",
        )
        .unwrap();
        assert_eq!(p.params.objects, vec![ObjectSpec::secret("a")]);
    }

    #[test]
    fn json_form_parses() {
        let p = objects(r#"{"array":["{\"objectName\":\"a\",\"objectType\":\"secret\"}", "{\"objectName\":\"k\",\"objectType\":\"key\"}"]}"#).unwrap();
        assert_eq!(
            p.params.objects,
            vec![ObjectSpec::secret("a"), ObjectSpec::key("k").with_index(1)]
        );
    }

    #[test]
    fn project_example_parses() {
        let yaml = "array:\n  - |\n    objectName: db-password\n    objectType: secret\n  - |\n    objectName: tls-cert\n    objectType: secret\n    objectAlias: tls/cert.pem\n    filePermission: \"0600\"\n";
        let p = objects(yaml).unwrap();
        assert_eq!(
            p.params.objects,
            vec![
                ObjectSpec::secret("db-password"),
                ObjectSpec::secret("tls-cert")
                    .with_index(1)
                    .with_alias("tls/cert.pem")
                    .with_permission(0o600),
            ]
        );
    }

    #[test]
    fn literal_scalar_text_is_kept() {
        let o = one_object("objectName: 123\nobjectType: secret\nfilePermission: 0755").unwrap();
        assert_eq!(o.object_name, "123");
        assert_eq!(o.file_permission, Some(0o755));
        let o = one_object(
            "objectName: a\nobjectType: secret\nobjectVersion: 00112233445566778899aabbccddeeff",
        )
        .unwrap();
        assert_eq!(
            o.object_version.as_deref(),
            Some("00112233445566778899aabbccddeeff")
        );
        let o = one_object(
            "objectName: a\nobjectType: secret\nobjectVersion: 12345678901234567890123456789012",
        )
        .unwrap();
        assert_eq!(
            o.object_version.as_deref(),
            Some("12345678901234567890123456789012")
        );
        let o = one_object("objectName: 1e3\nobjectType: secret\nobjectAlias: true").unwrap();
        assert_eq!(o.object_name, "1e3");
        assert_eq!(o.object_alias.as_deref(), Some("true"));
        let o = one_object("objectName: 0x1F\nobjectType: secret").unwrap();
        assert_eq!(o.object_name, "0x1F");
        // Quoted "null" is text; plain null is unset.
        let o = one_object("objectName: a\nobjectType: secret\nobjectAlias: \"null\"").unwrap();
        assert_eq!(o.object_alias.as_deref(), Some("null"));
        let o = one_object(
            "objectName: a\nobjectType: secret\nobjectAlias: null\nobjectVersion: ~\nobjectFormat:",
        )
        .unwrap();
        assert_eq!(o, ObjectSpec::secret("a"));
    }

    #[test]
    fn fields_are_trimmed() {
        let o = one_object(
            "objectName: \" a \"\nobjectType: \" secret \"\nobjectAlias: \" b/c \"\nobjectVersion: \" v1 \"\nobjectFormat: \" PFX \"\nobjectEncoding: \" Base64 \"\nfilePermission: \" 0600 \"",
        )
        .unwrap();
        assert_eq!(
            o,
            ObjectSpec::secret("a")
                .with_alias("b/c")
                .with_version("v1")
                .with_format(ObjectFormat::Pfx)
                .with_encoding(ObjectEncoding::Base64)
                .with_permission(0o600)
        );
    }

    #[test]
    fn object_versions() {
        for latest in [
            "objectVersion: \"\"",
            "objectVersion: latest",
            "objectVersion: LATEST",
            "objectVersion:",
        ] {
            let o = one_object(&format!("objectName: a\nobjectType: secret\n{latest}")).unwrap();
            assert_eq!(o.object_version, None, "{latest}");
        }
        // The error triple shows the version as written.
        let e = one_object_err("objectName: a\nobjectType: Key\nobjectVersion: latest");
        assert!(
            e.starts_with("failed to get objectType:Key, objectName:a, objectVersion:latest: "),
            "{e}"
        );
    }

    #[test]
    fn version_history() {
        for (text, n) in [
            ("2", 2),
            ("\"2\"", 2),
            ("0", 0),
            ("1", 1),
            ("+3", 3),
            ("", 0),
            ("\"\"", 0),
            ("2147483647", 2147483647),
        ] {
            let o = one_object(&format!(
                "objectName: a\nobjectType: secret\nobjectVersionHistory: {text}"
            ))
            .unwrap();
            assert_eq!(o.object_version_history, n, "{text}");
        }
        for bad in ["-1", "abc", "2.5", "2147483648", "0x2"] {
            let e = one_object_err(&format!(
                "objectName: a\nobjectType: secret\nobjectVersionHistory: {bad}"
            ));
            let shown = bad.trim_matches('"');
            assert_eq!(
                e,
                format!(
                    "unmarshal failed for keyVaultObjects at index 0, error: objectVersionHistory \"{shown}\" is not valid: use a whole number of versions such as 2 (0 or 1 fetch a single version)"
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn object_type_rules() {
        for (t, expected) in [
            ("secret", ObjectType::Secret),
            ("key", ObjectType::Key),
            ("cert", ObjectType::Cert),
        ] {
            assert_eq!(
                one_object(&format!("objectName: a\nobjectType: {t}"))
                    .unwrap()
                    .object_type,
                expected
            );
        }
        for (given, use_) in [("Secret", "secret"), ("KEY", "key"), ("Cert", "cert")] {
            let e = one_object(&format!("objectName: a\nobjectType: {given}")).unwrap_err();
            assert_eq!(
                e.to_string(),
                single(
                    "a",
                    given,
                    "",
                    &format!(
                        "objectType \"{given}\" is not valid: object types are case-sensitive, use \"{use_}\""
                    )
                )
            );
            assert_eq!(e.code(), "objects_invalid");
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
        }
        for bad in ["certificate", "", "secrets"] {
            let e = one_object_err(&format!("objectName: a\nobjectType: \"{bad}\""));
            assert_eq!(
                e,
                single(
                    "a",
                    bad,
                    "",
                    "Invalid vaultObjectTypes. Should be secret, key, or cert"
                )
            );
        }
    }

    #[test]
    fn object_format_rules() {
        for (f, expected) in [
            ("pem", ObjectFormat::Pem),
            ("PEM", ObjectFormat::Pem),
            ("pfx", ObjectFormat::Pfx),
            ("Pfx", ObjectFormat::Pfx),
        ] {
            let o = one_object(&format!(
                "objectName: a\nobjectType: secret\nobjectFormat: {f}"
            ))
            .unwrap();
            assert_eq!(o.object_format, expected);
        }
        assert_eq!(
            one_object("objectName: k\nobjectType: key\nobjectFormat: pem")
                .unwrap()
                .object_format,
            ObjectFormat::Pem
        );
        assert_eq!(
            one_object_err("objectName: a\nobjectType: secret\nobjectFormat: der"),
            single(
                "a",
                "secret",
                "",
                "invalid objectFormat: der, should be PEM or PFX"
            )
        );
        for (t, f) in [("key", "pfx"), ("cert", "PFX"), ("cert", "Pfx")] {
            assert_eq!(
                one_object_err(&format!(
                    "objectName: a\nobjectType: {t}\nobjectFormat: {f}"
                )),
                single(
                    "a",
                    t,
                    "",
                    "PFX format only supported for objectType: secret"
                )
            );
        }
    }

    #[test]
    fn object_encoding_rules() {
        for (e, expected) in [
            ("utf-8", ObjectEncoding::Utf8),
            ("UTF-8", ObjectEncoding::Utf8),
            ("hex", ObjectEncoding::Hex),
            ("HEX", ObjectEncoding::Hex),
            ("base64", ObjectEncoding::Base64),
            ("Base64", ObjectEncoding::Base64),
        ] {
            let o = one_object(&format!(
                "objectName: a\nobjectType: secret\nobjectEncoding: {e}"
            ))
            .unwrap();
            assert_eq!(o.object_encoding, expected);
        }
        for t in ["key", "cert"] {
            assert_eq!(
                one_object_err(&format!(
                    "objectName: a\nobjectType: {t}\nobjectEncoding: utf-8"
                )),
                single(
                    "a",
                    t,
                    "",
                    "objectEncoding only supported for objectType: secret"
                )
            );
        }
        assert_eq!(
            one_object_err("objectName: a\nobjectType: secret\nobjectEncoding: utf8"),
            single(
                "a",
                "secret",
                "",
                "invalid objectEncoding: utf8, should be hex, base64 or utf-8"
            )
        );
    }

    #[test]
    fn file_name_rules() {
        assert_eq!(
            one_object_err("objectType: secret"),
            single(
                "",
                "secret",
                "",
                "file name must not be empty; set objectName (and optionally objectAlias)"
            )
        );
        assert_eq!(
            one_object_err("objectName: \"\"\nobjectType: secret\nobjectAlias: \"\""),
            single(
                "",
                "secret",
                "",
                "file name must not be empty; set objectName (and optionally objectAlias)"
            )
        );
        assert_eq!(
            one_object_err("objectName: \"\"\nobjectType: secret\nobjectAlias: x"),
            single(
                "",
                "secret",
                "",
                "objectName is not set; set it to the name of the object in Key Vault"
            )
        );
        for (alias, msg) in [
            (
                "/etc/passwd",
                "file name must be a relative path; remove the leading '/'",
            ),
            ("../x", "file name must not contain '..'"),
            ("a/../b", "file name must not contain '..'"),
            ("a..b", "file name must not contain '..'"),
            ("..data", "file name must not contain '..'"),
            (
                "./a",
                "file name \"./a\" cannot be written by the driver: the path must be clean: no '//', no '.' elements and no trailing '/'",
            ),
            (
                "a//b",
                "file name \"a//b\" cannot be written by the driver: the path must be clean: no '//', no '.' elements and no trailing '/'",
            ),
            (
                "a/",
                "file name \"a/\" cannot be written by the driver: the path must be clean: no '//', no '.' elements and no trailing '/'",
            ),
            (
                ".",
                "file name \".\" cannot be written by the driver: the path must be clean: no '//', no '.' elements and no trailing '/'",
            ),
        ] {
            assert_eq!(
                one_object_err(&format!(
                    "objectName: n\nobjectType: secret\nobjectAlias: \"{alias}\""
                )),
                single("n", "secret", "", msg),
                "{alias}"
            );
        }
        let long = "x".repeat(256);
        let e = one_object_err(&format!(
            "objectName: n\nobjectType: secret\nobjectAlias: {long}"
        ));
        assert!(
            e.ends_with("a path element is 256 bytes long; the driver accepts at most 255"),
            "{e}"
        );
        // The object name is the file name without an alias.
        assert_eq!(
            one_object_err("objectName: ../n\nobjectType: secret"),
            single("../n", "secret", "", "file name must not contain '..'")
        );
        // Allowed: sub-directories, an empty alias (= no alias), dots inside names.
        assert_eq!(
            one_object("objectName: n\nobjectType: secret\nobjectAlias: dir/sub/f.pem")
                .unwrap()
                .file_name(),
            "dir/sub/f.pem"
        );
        let o = one_object("objectName: n.v1\nobjectType: secret\nobjectAlias: \"  \"").unwrap();
        assert_eq!(o.object_alias, None);
        assert_eq!(o.file_name(), "n.v1");
    }

    #[test]
    fn file_permission_rules() {
        for (text, mode) in [
            ("0600", 0o600),
            ("755", 0o755),
            ("\"0644\"", 0o644),
            ("0", 0),
            ("0000", 0),
            ("0777", 0o777),
            ("000644", 0o644),
        ] {
            let o = one_object(&format!(
                "objectName: a\nobjectType: secret\nfilePermission: {text}"
            ))
            .unwrap();
            assert_eq!(o.file_permission, Some(mode), "{text}");
        }
        for bad in [
            "0900",
            "rw",
            "1000",
            "-1",
            "0o644",
            "+644",
            "0x1ff",
            "7777",
            "99999999999999999999",
        ] {
            let e = one_object_err(&format!(
                "objectName: a\nobjectType: secret\nfilePermission: \"{bad}\""
            ));
            assert_eq!(
                e,
                single(
                    "a",
                    "secret",
                    "",
                    &format!(
                        "object \"a\": filePermission \"{bad}\" is not a valid octal file mode (0000–0777)"
                    )
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn builders_and_defaults() {
        let o = ObjectSpec::cert("c").with_index(3).with_history(5);
        assert_eq!(o.object_type, ObjectType::Cert);
        assert_eq!(o.index, 3);
        assert!(o.is_history());
        assert!(!ObjectSpec::secret("s").with_history(1).is_history());
        assert_eq!(ObjectSpec::key("k").file_name(), "k");
    }

    #[test]
    fn canonical_cloud_lookup() {
        assert_eq!(canonical_cloud_name("azurecloud"), Some("AzurePublicCloud"));
        assert_eq!(canonical_cloud_name("AzureStack"), None);
        assert_eq!(canonical_cloud_name(""), None);
    }

    /// `objects` with one `- |` block per entry.
    fn array(entries: &[&str]) -> String {
        let mut out = String::from("array:\n");
        for e in entries {
            out.push_str("  - |\n");
            for line in e.lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn jmes_path_entries_parse() {
        let yaml = array(&[
            "objectName: db\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: db-user\n  - path: \"hosts[0]\"\n    objectAlias: conf/host\n    filePermission: \"0600\"\n  - path: port\n    objectAlias: port\n    filePermission: 0640",
        ]);
        let p = objects(&yaml).unwrap();
        let o = &p.params.objects[0];
        assert_eq!(
            o.jmes_path,
            vec![
                JmesPathEntry::new("username", "db-user"),
                JmesPathEntry::new("hosts[0]", "conf/host").with_permission(0o600),
                JmesPathEntry::new("port", "port").with_permission(0o640),
            ]
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        // Null and an empty list mean no entries.
        for v in ["", "~", "[]"] {
            let yaml = array(&[&format!(
                "objectName: db\nobjectType: secret\njmesPath: {v}"
            )]);
            assert!(
                objects(&yaml).unwrap().params.objects[0]
                    .jmes_path
                    .is_empty()
            );
        }
        // Flow style works like block style.
        let yaml = array(&[
            "objectName: db\nobjectType: secret\njmesPath: [{path: a.b, objectAlias: ab}]",
        ]);
        assert_eq!(
            objects(&yaml).unwrap().params.objects[0].jmes_path,
            vec![JmesPathEntry::new("a.b", "ab")]
        );
    }

    #[test]
    fn jmes_path_errors_are_invalid_argument_before_any_network_call() {
        let cases: &[(&str, &str)] = &[
            (
                "objectName: k\nobjectType: key\njmesPath:\n  - path: a\n    objectAlias: a",
                "jmesPath is only supported for objectType: secret",
            ),
            (
                "objectName: c\nobjectType: cert\njmesPath: []",
                "jmesPath is only supported for objectType: secret",
            ),
            (
                "objectName: s\nobjectType: secret\nobjectVersionHistory: 2\njmesPath:\n  - path: a\n    objectAlias: a",
                "jmesPath cannot be combined with objectVersionHistory",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - objectAlias: a",
                "jmesPath[0].path is not set",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: ok\n    objectAlias: ok\n  - path: \"a[\"\n    objectAlias: b",
                "jmesPath[1].path \"a[\" is not a valid JMESPath expression",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a",
                "jmesPath[0].objectAlias is not set; every entry needs the name of the file it writes",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: ~",
                "jmesPath[0].objectAlias is not set",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: [x, y]",
                "expected jmesPath objectAlias as a single string value",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: {a: b}\n    objectAlias: x",
                "expected jmesPath path as a single string value",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: /etc/x",
                "jmesPath[0].objectAlias: file name must be a relative path",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: a/../b",
                "jmesPath[0].objectAlias: file name must not contain '..'",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: a//b",
                "jmesPath[0].objectAlias: file name \"a//b\" cannot be written by the driver",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: a\n    filePermission: \"0999\"",
                "jmesPath[0].filePermission \"0999\" is not a valid octal file mode",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath: password",
                "found a single value; jmesPath must be a list of entries",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  path: a\n  objectAlias: b",
                "found a mapping; jmesPath must be a list of entries",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - password",
                "a jmesPath entry is a single value",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectalias: b",
                "unknown parameter \"jmesPath[0].objectalias\"; did you mean \"objectAlias\"?",
            ),
            (
                "objectName: s\nobjectType: secret\njmesPath: []\njmesPath: []",
                "mapping key \"jmesPath\" is defined more than once",
            ),
            (
                "objectName: s\nobjectType: secret\njmespath: []",
                "unknown parameter \"jmespath\"; did you mean \"jmesPath\"?",
            ),
        ];
        for (entry, fragment) in cases {
            let e = objects(&array(&[entry])).unwrap_err();
            assert!(e.to_string().contains(fragment), "{entry}\n=> {e}");
            assert_eq!(e.class(), ErrorClass::InvalidArgument, "{e}");
            assert_eq!(e.code(), "objects_invalid", "{e}");
        }
        // Unknown keys of an entry are warnings, like unknown object fields.
        let yaml = array(&[
            "objectName: s\nobjectType: secret\njmesPath:\n  - path: a\n    objectAlias: b\n    note: x",
        ]);
        let p = objects(&yaml).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.warnings[0].key, "jmesPath[0].note");
        assert_eq!(p.warnings[0].object_index, Some(0));
    }

    #[test]
    fn per_object_vaults() {
        let two = array(&[
            "objectName: a\nobjectType: secret\nkeyvaultName: kv-one",
            "objectName: a\nobjectType: secret\nkeyvaultName: kv-two",
        ]);
        // The class-level name may go when every object names its own vault.
        let p = ok(&[(KEYVAULT_NAME, ""), (OBJECTS, &two)]).params;
        assert_eq!(p.keyvault_name, None);
        assert_eq!(p.objects[0].keyvault_name.as_deref(), Some("kv-one"));
        assert_eq!(p.vaults(), ["kv-one", "kv-two"]);
        assert_eq!(p.vault_of(&p.objects[1]), "kv-two");

        // Mixed: the class-level name is the default.
        let mixed = array(&[
            "objectName: a\nobjectType: secret",
            "objectName: b\nobjectType: secret\nkeyvaultName: kv-two",
        ]);
        let p = ok(&[(OBJECTS, &mixed)]).params;
        assert_eq!(p.vault_of(&p.objects[0]), "kv-name");
        assert_eq!(p.vault_of(&p.objects[1]), "kv-two");
        assert_eq!(p.vaults(), ["kv-name", "kv-two"]);

        // Neither: the message names both places, and comes where the reference reports a
        // missing keyvaultName (before the tenant).
        for params in [
            vec![(KEYVAULT_NAME, ""), (OBJECTS, mixed.as_str())],
            vec![(KEYVAULT_NAME, ""), (OBJECTS, ONE_SECRET), (TENANT_ID, "")],
            vec![(KEYVAULT_NAME, ""), (OBJECTS, "")],
            vec![(KEYVAULT_NAME, ""), (OBJECTS, "not: [valid")],
        ] {
            let e = err(&params);
            assert!(matches!(e, ParamsError::KeyvaultNameMissing), "{e}");
            let text = e.to_string();
            assert!(text.contains("spec.parameters.keyvaultName"), "{text}");
            assert!(
                text.contains("keyvaultName in every entry of spec.parameters.objects"),
                "{text}"
            );
        }
        // Every valid entry names a vault: an invalid entry reports its own error.
        let broken = array(&[
            "objectName: a\nobjectType: secret\nkeyvaultName: kv-one",
            "objectName: b\nobjectType: Secret\nkeyvaultName: kv-one",
        ]);
        let e = err(&[(KEYVAULT_NAME, ""), (OBJECTS, &broken)]);
        assert!(
            e.to_string().contains("object types are case-sensitive"),
            "{e}"
        );

        // An object's vault obeys the vault name rules, also when it is the only vault named.
        let e = err(&[
            (KEYVAULT_NAME, ""),
            (
                OBJECTS,
                &array(&["objectName: a\nobjectType: secret\nkeyvaultName: a.b"]),
            ),
        ]);
        assert!(
            e.to_string().contains("keyvaultName \"a.b\" is not valid"),
            "{e}"
        );
        for (name, problem) in [
            ("ab", "must be between 3 and 24 chars"),
            ("kv.vault.azure.net", "must match [-a-zA-Z0-9]{3,24}"),
            ("https://kv", "must match [-a-zA-Z0-9]{3,24}"),
        ] {
            let yaml = array(&[&format!(
                "objectName: a\nobjectType: secret\nkeyvaultName: \"{name}\""
            )]);
            let e = objects(&yaml).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "failed to get objectType:secret, objectName:a, objectVersion:: keyvaultName \"{name}\" is not valid: {problem}; set it to the vault's name, not its URL"
                )
            );
            assert_eq!(e.class(), ErrorClass::InvalidArgument);
        }
        let yaml = array(&["objectName: a\nobjectType: secret\nKeyvaultName: kv-one"]);
        assert!(
            objects(&yaml)
                .unwrap_err()
                .to_string()
                .contains("did you mean \"keyvaultName\"")
        );
    }

    fn fragments(
        parts: &'static [&'static str],
    ) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop::collection::vec(prop::sample::select(parts), 0..24).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #[test]
        fn tokens_json_errors_never_echo_content(json in fragments(&[
            "{", "}", "\"", ":", ",", "[", "]", "token", "api://AzureADTokenExchange",
            "expirationTimestamp", "hunter2", "null", "1", " ", "2026-05-01T10:00:00Z",
        ])) {
            let i = input_with(wi_attrs(&[]), Some(&json), None);
            match parse_input(&i) {
                Ok(p) => {
                    let dbg = format!("{p:?}");
                    proptest::prop_assert!(!dbg.contains("hunter2"));
                }
                Err(e) => {
                    let text = e.to_string();
                    proptest::prop_assert!(!text.contains("hunter2"), "{}", text);
                    proptest::prop_assert_eq!(e.class(), ErrorClass::FailedPrecondition);
                }
            }
        }

        #[test]
        fn jmes_path_parser_is_total_and_outputs_valid_entries(yaml in fragments(&[
            "array:", "\n", "  - |", "\n    ", "objectName: s", "objectType: secret", "objectType: key",
            "jmesPath:", "\n      - ", "\n        ", "path: ", "objectAlias: ", "filePermission: ",
            "a.b", "a[", "[0]", "'x'", "`1`", "..", "/", "a/b", "0600", "999", "keyvaultName: ",
            "kv-1", "k.v", "~", "[", "]", "{", "}", ":", " ", "-", "\"",
        ])) {
            if let Ok(p) = objects(&yaml) {
                for o in &p.params.objects {
                    proptest::prop_assert!(o.jmes_path.is_empty() || o.object_type == ObjectType::Secret);
                    for e in &o.jmes_path {
                        proptest::prop_assert!(crate::mount::files::validate_path(&e.object_alias).is_ok());
                        proptest::prop_assert!(!e.object_alias.contains(".."));
                        proptest::prop_assert!(crate::render::extract::check_expression(&e.path).is_ok());
                        proptest::prop_assert!(e.file_permission.is_none_or(|m| m <= 0o777));
                    }
                    if let Some(v) = &o.keyvault_name {
                        proptest::prop_assert!(vault_name_problem(v).is_none());
                    }
                }
            }
        }

        #[test]
        fn objects_parser_is_total_and_outputs_valid_paths(yaml in fragments(&[
            "array:", "\n", "  - |", "\n    ", "objectName: ", "objectType: ", "secret", "key",
            "objectAlias: ", "a/b", "..", "/", "filePermission: ", "0644", "objectVersionHistory: ",
            "2", "-", "[", "]", "{", "}", "\"", "'", ":", "#", "&a ", "*a", "~", " ", "\t",
        ])) {
            if let Ok(p) = objects(&yaml) {
                for o in &p.params.objects {
                    proptest::prop_assert!(crate::mount::files::validate_path(o.file_name()).is_ok());
                    proptest::prop_assert!(!o.file_name().contains(".."));
                    proptest::prop_assert!(o.file_permission.is_none_or(|m| m <= 0o777));
                }
            }
        }
    }

    /// `objects` documents with the right shape whose field values mix valid and hostile ones:
    /// unlike the token soup above, most reach the parser's output, where every accepted object
    /// must name a writable path and carry what was written.
    #[test]
    fn objects_parser_outputs_on_well_formed_documents() {
        use proptest::prelude::*;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let field = (
            prop::sample::select(vec![
                "objectAlias",
                "filePermission",
                "objectVersionHistory",
                "objectVersion",
                "objectEncoding",
            ]),
            prop::sample::select(vec![
                "a", "a/b", "a..b", "..", "../x", "/abs", "x//y", "0644", "0999", "2", "-1", "hex",
                "",
            ]),
        );
        let entry = (
            "[a-z][a-z0-9-]{0,8}",
            prop::sample::select(vec!["secret", "key", "cert"]),
            prop::collection::btree_map(field.0, field.1, 0..3),
        );
        let strategy = prop::collection::vec(entry, 1..4);
        let accepted = AtomicUsize::new(0);
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        });
        runner
            .run(&strategy, |entries| {
                let mut yaml = String::from("array:\n");
                for (i, (name, object_type, fields)) in entries.iter().enumerate() {
                    yaml.push_str(&format!(
                        "  - |\n    objectName: {name}-{i}\n    objectType: {object_type}\n"
                    ));
                    for (k, v) in fields {
                        yaml.push_str(&format!("    {k}: {v}\n"));
                    }
                }
                let Ok(p) = objects(&yaml) else {
                    return Ok(());
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(p.params.objects.len(), entries.len());
                for (o, (name, object_type, fields)) in p.params.objects.iter().zip(&entries) {
                    prop_assert!(crate::mount::files::validate_path(o.file_name()).is_ok());
                    prop_assert!(!o.file_name().contains(".."));
                    prop_assert!(o.file_permission.is_none_or(|m| m <= 0o777));
                    prop_assert!(o.object_name.starts_with(name.as_str()));
                    prop_assert_eq!(o.object_type.as_str(), *object_type);
                    let alias = fields.get("objectAlias").filter(|a| !a.is_empty());
                    prop_assert_eq!(o.object_alias.as_deref(), alias.copied());
                }
                Ok(())
            })
            .unwrap();
        let a = accepted.into_inner();
        eprintln!("PROPERTY objects parser: accepted {a} of 256 generated documents");
        assert!(
            a >= 256 / 5,
            "only {a} of 256 documents reached the assertions"
        );
    }
}
