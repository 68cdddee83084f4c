//! Cloud table (authority host, Key Vault resource and DNS suffix per Azure cloud) and
//! custom cloud file parsing for `AzureStackCloud`; the process environment is only read.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ErrorClass;

/// Name of the environment variable the reference reads for the custom cloud file.
pub const AZURE_ENVIRONMENT_FILEPATH: &str = "AZURE_ENVIRONMENT_FILEPATH";

/// The cloud selected by `cloudName: AzureStackCloud`, loaded from a JSON file.
pub const AZURE_STACK_CLOUD: &str = "AzureStackCloud";

/// Default cloud name (`cloudName` empty and no `--cloud-name`).
pub const DEFAULT_CLOUD_NAME: &str = "AzurePublicCloud";

/// Endpoints of one Azure cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    /// Canonical cloud name (`AzurePublicCloud`, ... or the file's `name`).
    pub name: String,
    /// Entra ID authority host with trailing slash, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: String,
    /// Key Vault resource without trailing slash, e.g. `https://vault.azure.net`.
    pub keyvault_resource: String,
    /// Vault DNS suffix, e.g. `vault.azure.net`.
    pub keyvault_dns_suffix: String,
}

impl Cloud {
    /// The OAuth2 scope for Key Vault tokens: `<resource>/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.keyvault_resource)
    }

    /// The vault base URL `https://<vault>.<suffix>/` (always with trailing slash).
    pub fn vault_url(&self, vault_name: &str) -> String {
        format!("https://{vault_name}.{}/", self.keyvault_dns_suffix)
    }

    fn builtin(name: &str, authority: &str, resource: &str, suffix: &str) -> Self {
        Self {
            name: name.to_owned(),
            authority_host: authority.to_owned(),
            keyvault_resource: resource.to_owned(),
            keyvault_dns_suffix: suffix.to_owned(),
        }
    }
}

/// Why a cloud could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The name is not in the table (message format of the reference, §6.1).
    #[error(
        "cloudName {name} is not valid, error: autorest/azure: There is no cloud environment matching the name \"{upper}\""
    )]
    UnknownCloud {
        /// The name as given.
        name: String,
        /// Upper-cased name, as the reference prints it.
        upper: String,
    },
    /// `AzureStackCloud` without `cloudEnvFileName` or `AZURE_ENVIRONMENT_FILEPATH`.
    #[error(
        "cloudName AzureStackCloud is not valid, error: no custom cloud file: set cloudEnvFileName in the SecretProviderClass or AZURE_ENVIRONMENT_FILEPATH on the provider"
    )]
    NoCloudFile,
    /// The custom cloud file cannot be read (the content is never echoed).
    #[error(
        "cloudName AzureStackCloud is not valid, error: cannot read cloud environment file {path}: {source}. Check cloudEnvFileName and that the file is mounted into the provider pod"
    )]
    FileUnreadable {
        /// Path of the file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The custom cloud file is not valid JSON or lacks a field (only the position is reported).
    #[error(
        "cloudName AzureStackCloud is not valid, error: cloud environment file {path} is not valid: {kind} at line {line} column {column}"
    )]
    FileInvalid {
        /// Path of the file.
        path: PathBuf,
        /// `syntax error`, `missing or mistyped field`, ...
        kind: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A required field is empty or is not a URL/host of the expected form.
    #[error(
        "cloudName AzureStackCloud is not valid, error: cloud environment file {path}: field {field} is missing or invalid"
    )]
    FieldInvalid {
        /// Path of the file.
        path: PathBuf,
        /// JSON field name.
        field: &'static str,
    },
}

impl CloudError {
    /// The error class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::UnknownCloud { .. } => ErrorClass::InvalidArgument,
            Self::NoCloudFile
            | Self::FileUnreadable { .. }
            | Self::FileInvalid { .. }
            | Self::FieldInvalid { .. } => ErrorClass::FailedPrecondition,
        }
    }

    /// A bounded snake_case code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownCloud { .. } => "unknown_cloud",
            Self::NoCloudFile => "cloud_file_missing",
            Self::FileUnreadable { .. } => "cloud_file_unreadable",
            Self::FileInvalid { .. } => "cloud_file_invalid",
            Self::FieldInvalid { .. } => "cloud_file_field_invalid",
        }
    }
}

/// Looks up a built-in cloud (case-insensitive, with aliases); `None` for unknown names and for
/// `AzureStackCloud`, which needs a file.
pub fn builtin_cloud(name: &str) -> Option<Cloud> {
    let lower = name.trim().to_ascii_lowercase();
    let cloud = match lower.as_str() {
        "" | "azurepubliccloud" | "azurecloud" => Cloud::builtin(
            "AzurePublicCloud",
            "https://login.microsoftonline.com/",
            "https://vault.azure.net",
            "vault.azure.net",
        ),
        "azureusgovernmentcloud" | "azureusgovernment" => Cloud::builtin(
            "AzureUSGovernmentCloud",
            "https://login.microsoftonline.us/",
            "https://vault.usgovcloudapi.net",
            "vault.usgovcloudapi.net",
        ),
        "azurechinacloud" => Cloud::builtin(
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn/",
            "https://vault.azure.cn",
            "vault.azure.cn",
        ),
        "azuregermancloud" => Cloud::builtin(
            "AzureGermanCloud",
            "https://login.microsoftonline.de/",
            "https://vault.microsoftazure.de",
            "vault.microsoftazure.de",
        ),
        _ => return None,
    };
    Some(cloud)
}

/// The provider's own `AZURE_ENVIRONMENT_FILEPATH` (read-only; empty counts as unset).
pub fn process_env_cloud_file() -> Option<PathBuf> {
    std::env::var_os(AZURE_ENVIRONMENT_FILEPATH)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Resolves `name` (the SPC `cloudName`, already defaulted) to a [`Cloud`].
///
/// For `AzureStackCloud` the JSON file is `env_file` (the SPC `cloudEnvFileName`) or else
/// `process_env_file` (normally [`process_env_cloud_file`]); it is read on every call so a
/// changed file takes effect on the next Mount.
///
/// # Errors
///
/// [`CloudError`]: unknown name (InvalidArgument), missing/unreadable/invalid file
/// (FailedPrecondition).
pub fn resolve_cloud(
    name: &str,
    env_file: Option<&Path>,
    process_env_file: Option<PathBuf>,
) -> Result<Cloud, CloudError> {
    if name.trim().eq_ignore_ascii_case(AZURE_STACK_CLOUD) {
        let path = match env_file.filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => p.to_path_buf(),
            None => process_env_file.ok_or(CloudError::NoCloudFile)?,
        };
        return load_cloud_file(&path);
    }
    builtin_cloud(name).ok_or_else(|| CloudError::UnknownCloud {
        name: name.to_owned(),
        upper: name.to_uppercase(),
    })
}

#[derive(Deserialize)]
struct CloudFile {
    #[serde(default)]
    name: String,
    #[serde(rename = "activeDirectoryEndpoint")]
    active_directory_endpoint: String,
    #[serde(rename = "keyVaultEndpoint")]
    key_vault_endpoint: String,
    #[serde(rename = "keyVaultDNSSuffix")]
    key_vault_dns_suffix: String,
}

/// Reads and validates a custom cloud JSON file.
///
/// # Errors
///
/// [`CloudError::FileUnreadable`], [`CloudError::FileInvalid`], [`CloudError::FieldInvalid`].
pub fn load_cloud_file(path: &Path) -> Result<Cloud, CloudError> {
    let bytes = std::fs::read(path).map_err(|source| CloudError::FileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let file: CloudFile = serde_json::from_slice(&bytes).map_err(|e| CloudError::FileInvalid {
        path: path.to_path_buf(),
        kind: match e.classify() {
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "unexpected end of file",
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => "syntax error",
        },
        line: e.line(),
        column: e.column(),
    })?;
    let field_err = |field| CloudError::FieldInvalid {
        path: path.to_path_buf(),
        field,
    };
    let authority = normalise_https_url(&file.active_directory_endpoint)
        .ok_or_else(|| field_err("activeDirectoryEndpoint"))?;
    let resource = normalise_https_url(&file.key_vault_endpoint)
        .ok_or_else(|| field_err("keyVaultEndpoint"))?;
    let suffix = file.key_vault_dns_suffix.trim().trim_matches('.');
    if suffix.is_empty()
        || !suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(field_err("keyVaultDNSSuffix"));
    }
    let name = if file.name.trim().is_empty() {
        AZURE_STACK_CLOUD.to_owned()
    } else {
        file.name.trim().to_owned()
    };
    Ok(Cloud {
        name,
        authority_host: format!("{authority}/"),
        keyvault_resource: resource,
        keyvault_dns_suffix: suffix.to_ascii_lowercase(),
    })
}

/// Parses an http(s) URL and returns it without trailing slashes, or `None`.
fn normalise_https_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return None;
    }
    Some(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn builtin_table_and_aliases() {
        for (input, name, scope, suffix, authority) in [
            (
                "AzurePublicCloud",
                "AzurePublicCloud",
                "https://vault.azure.net/.default",
                "vault.azure.net",
                "https://login.microsoftonline.com/",
            ),
            (
                "azurecloud",
                "AzurePublicCloud",
                "https://vault.azure.net/.default",
                "vault.azure.net",
                "https://login.microsoftonline.com/",
            ),
            (
                "",
                "AzurePublicCloud",
                "https://vault.azure.net/.default",
                "vault.azure.net",
                "https://login.microsoftonline.com/",
            ),
            (
                "AZUREUSGOVERNMENT",
                "AzureUSGovernmentCloud",
                "https://vault.usgovcloudapi.net/.default",
                "vault.usgovcloudapi.net",
                "https://login.microsoftonline.us/",
            ),
            (
                "AzureUSGovernmentCloud",
                "AzureUSGovernmentCloud",
                "https://vault.usgovcloudapi.net/.default",
                "vault.usgovcloudapi.net",
                "https://login.microsoftonline.us/",
            ),
            (
                "AzureChinaCloud",
                "AzureChinaCloud",
                "https://vault.azure.cn/.default",
                "vault.azure.cn",
                "https://login.chinacloudapi.cn/",
            ),
            (
                "azuregermancloud",
                "AzureGermanCloud",
                "https://vault.microsoftazure.de/.default",
                "vault.microsoftazure.de",
                "https://login.microsoftonline.de/",
            ),
        ] {
            let c = resolve_cloud(input, None, None).unwrap();
            assert_eq!(c.name, name, "{input}");
            assert_eq!(c.scope(), scope, "{input}");
            assert_eq!(c.keyvault_dns_suffix, suffix, "{input}");
            assert_eq!(c.authority_host, authority, "{input}");
            assert!(!c.keyvault_resource.ends_with('/'));
        }
        assert_eq!(
            builtin_cloud("AzureCloud").unwrap().vault_url("kv1"),
            "https://kv1.vault.azure.net/"
        );
    }

    #[test]
    fn unknown_cloud_message_matches_reference() {
        let err = resolve_cloud("AzurePublic", None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cloudName AzurePublic is not valid, error: autorest/azure: There is no cloud environment matching the name \"AZUREPUBLIC\""
        );
        assert_eq!(err.class(), ErrorClass::InvalidArgument);
    }

    fn write_file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn custom_cloud_file_from_spc_wins_over_env() {
        let f = write_file(
            r#"{"name":"MyStack","activeDirectoryEndpoint":"https://login.stack.example/","keyVaultEndpoint":"https://vault.stack.example/","keyVaultDNSSuffix":"vault.stack.example","other":1}"#,
        );
        let c = resolve_cloud(
            "azurestackcloud",
            Some(f.path()),
            Some("/nonexistent".into()),
        )
        .unwrap();
        assert_eq!(c.name, "MyStack");
        assert_eq!(c.authority_host, "https://login.stack.example/");
        assert_eq!(c.keyvault_resource, "https://vault.stack.example");
        assert_eq!(c.keyvault_dns_suffix, "vault.stack.example");
        assert_eq!(c.scope(), "https://vault.stack.example/.default");
    }

    #[test]
    fn custom_cloud_falls_back_to_process_env_file() {
        let f = write_file(
            r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/","keyVaultEndpoint":"https://vault.azure.net/","keyVaultDNSSuffix":"vault.azure.net"}"#,
        );
        let c = resolve_cloud("AzureStackCloud", None, Some(f.path().to_path_buf())).unwrap();
        assert_eq!(c.keyvault_dns_suffix, "vault.azure.net");
        let err = resolve_cloud("AzureStackCloud", None, None).unwrap_err();
        assert_eq!(err.code(), "cloud_file_missing");
        assert_eq!(err.class(), ErrorClass::FailedPrecondition);
    }

    #[test]
    fn missing_file_names_path() {
        let err = resolve_cloud(
            "AzureStackCloud",
            Some(Path::new("/etc/nope/cloud.json")),
            None,
        )
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::FailedPrecondition);
        assert!(err.to_string().contains("/etc/nope/cloud.json"));
    }

    #[test]
    fn invalid_json_reports_position_not_content() {
        let f = write_file("{\n  \"name\": \"hunter2-secret\",\n  oops\n}");
        let err = resolve_cloud("AzureStackCloud", Some(f.path()), None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(err.class(), ErrorClass::FailedPrecondition);

        let f = write_file(r#"{"name":"x","activeDirectoryEndpoint":"https://a/"}"#);
        let err = resolve_cloud("AzureStackCloud", Some(f.path()), None).unwrap_err();
        assert_eq!(err.code(), "cloud_file_invalid");

        let f = write_file(
            r#"{"name":"x","activeDirectoryEndpoint":"not a url","keyVaultEndpoint":"https://v/","keyVaultDNSSuffix":"v"}"#,
        );
        let err = resolve_cloud("AzureStackCloud", Some(f.path()), None).unwrap_err();
        assert!(err.to_string().contains("activeDirectoryEndpoint"));
    }
}
