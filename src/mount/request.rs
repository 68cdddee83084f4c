//! Decoding of the driver's JSON-in-protobuf request fields into domain types.
//!
//! `attributes` is a JSON object of strings, `secrets` a JSON object of strings
//! or the literal `null` (driver v1.6 without nodePublishSecretRef), and
//! `permission` a JSON number such as `420`. The service-account tokens
//! attribute and every `secrets` value are moved into redacting types at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::ObjectVersion;
use crate::secret::SecretString;

/// Attribute key under which kubelet passes service-account tokens.
pub const TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";
/// Attribute key of the pod name.
pub const POD_NAME_KEY: &str = "csi.storage.k8s.io/pod.name";
/// Attribute key of the pod namespace.
pub const POD_NAMESPACE_KEY: &str = "csi.storage.k8s.io/pod.namespace";
/// Attribute key of the pod UID.
pub const POD_UID_KEY: &str = "csi.storage.k8s.io/pod.uid";
/// Attribute key of the service account name.
pub const SERVICE_ACCOUNT_NAME_KEY: &str = "csi.storage.k8s.io/serviceAccount.name";
/// Attribute key of the SecretProviderClass name (NodePublish only).
pub const SPC_KEY: &str = "secretProviderClass";

/// Non-secret attributes. `Debug` lists keys only: values may be user-supplied
/// text that nobody asked to see in logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    /// Builds from a map (tests and the offline `validate` command).
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// All keys in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The nodePublishSecretRef data; every value is secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretMap(BTreeMap<String, SecretString>);

impl SecretMap {
    /// Builds from a map.
    pub fn from_map(map: BTreeMap<String, SecretString>) -> Self {
        Self(map)
    }

    /// Case-insensitive lookup (the reference matches `clientid`/`clientsecret` that way).
    pub fn get_ignore_case(&self, key: &str) -> Option<&SecretString> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Exact lookup.
    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.0.get(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A decoded Mount request.
#[derive(Debug, Clone)]
pub struct MountInput {
    /// SecretProviderClass parameters merged with the pod's volume context,
    /// without the tokens attribute.
    pub attributes: Attributes,
    /// The tokens attribute (`csi.storage.k8s.io/serviceAccount.tokens`), if present.
    pub service_account_tokens: Option<SecretString>,
    /// nodePublishSecretRef data; `None` when the driver sent `null`.
    pub secrets: Option<SecretMap>,
    /// Default file mode from `permission`.
    pub default_mode: u32,
    /// The pod's mount directory (a hint; never written to).
    pub target_path: String,
    /// Objects currently mounted (a hint).
    pub current_object_versions: Vec<ObjectVersion>,
}

/// A request field that cannot be decoded. Messages never quote the field's content.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// `attributes` is not a JSON object of strings.
    #[error(
        "failed to unmarshal attributes: not a JSON object of string values ({0}); the driver sends SecretProviderClass parameters as strings, quote every value in spec.parameters"
    )]
    Attributes(String),
    /// `secrets` is not a JSON object of strings nor `null`.
    #[error(
        "failed to unmarshal secrets: not a JSON object of string values or null ({0}); check the nodePublishSecretRef Secret"
    )]
    Secrets(String),
    /// `permission` is not a decimal file mode.
    #[error(
        "failed to unmarshal file permission: expected a JSON number between 0 and 511 such as 420, {0}"
    )]
    Permission(String),
}

/// Describes a serde_json error by position and category only, never by content.
fn describe(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong value type",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

impl MountInput {
    /// Decodes the protocol fields.
    ///
    /// # Errors
    /// [`RequestError`] naming the field.
    pub fn decode(
        attributes: &str,
        secrets: &str,
        permission: &str,
        target_path: String,
        current_object_versions: Vec<ObjectVersion>,
    ) -> Result<Self, RequestError> {
        let mut attrs: BTreeMap<String, String> =
            serde_json::from_str(attributes).map_err(|e| RequestError::Attributes(describe(&e)))?;
        let service_account_tokens = attrs.remove(TOKENS_KEY).map(SecretString::new);

        let secrets = decode_secrets(secrets)?;
        let default_mode = decode_permission(permission)?;
        Ok(Self {
            attributes: Attributes(attrs),
            service_account_tokens,
            secrets,
            default_mode,
            target_path,
            current_object_versions,
        })
    }

    /// Pod namespace, pod name and SecretProviderClass name for log spans
    /// (empty strings when absent).
    pub fn pod_identity_fields(&self) -> (&str, &str, &str) {
        (
            self.attributes.get(POD_NAMESPACE_KEY).unwrap_or(""),
            self.attributes.get(POD_NAME_KEY).unwrap_or(""),
            self.attributes.get(SPC_KEY).unwrap_or(""),
        )
    }
}

fn decode_secrets(secrets: &str) -> Result<Option<SecretMap>, RequestError> {
    // The raw JSON text holds secret values: decode straight into SecretString.
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Wire(Option<BTreeMap<String, String>>);
    let trimmed = secrets.trim();
    if trimmed.is_empty() {
        // Not sent at all (some hand-written clients): same as no secret.
        return Ok(None);
    }
    let Wire(map) =
        serde_json::from_str(trimmed).map_err(|e| RequestError::Secrets(describe(&e)))?;
    Ok(map.map(|m| {
        SecretMap(
            m.into_iter()
                .map(|(k, v)| (k, SecretString::new(v)))
                .collect(),
        )
    }))
}

fn decode_permission(permission: &str) -> Result<u32, RequestError> {
    let trimmed = permission.trim();
    if trimmed.is_empty() {
        // The driver always sends "420"; other consumers might not.
        return Ok(0o644);
    }
    let value: serde_json::Value = serde_json::from_str(trimmed)
        .map_err(|e| RequestError::Permission(format!("got {}", describe(&e))))?;
    let n = value.as_u64().ok_or_else(|| {
        RequestError::Permission("got a value that is not a non-negative integer".into())
    })?;
    if n > 0o777 {
        return Err(RequestError::Permission(format!("got {n}")));
    }
    u32::try_from(n).map_err(|_| RequestError::Permission(format!("got {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(a: &str, s: &str, p: &str) -> Result<MountInput, RequestError> {
        MountInput::decode(a, s, p, String::new(), vec![])
    }

    #[test]
    fn secrets_null_empty_and_map() {
        assert!(decode("{}", "null", "420").unwrap().secrets.is_none());
        assert!(decode("{}", "", "420").unwrap().secrets.is_none());
        assert!(
            decode("{}", "{}", "420")
                .unwrap()
                .secrets
                .unwrap()
                .is_empty()
        );
        let m = decode("{}", r#"{"ClientID":"a","clientsecret":"b"}"#, "420")
            .unwrap()
            .secrets
            .unwrap();
        assert_eq!(m.get_ignore_case("clientid").unwrap().expose(), "a");
        assert_eq!(m.get_ignore_case("CLIENTSECRET").unwrap().expose(), "b");
    }

    #[test]
    fn permission_decimal() {
        assert_eq!(decode("{}", "null", "420").unwrap().default_mode, 0o644);
        assert_eq!(decode("{}", "null", "384").unwrap().default_mode, 0o600);
        assert!(decode("{}", "null", "\"420\"").is_err());
        assert!(decode("{}", "null", "-1").is_err());
        assert!(decode("{}", "null", "4.2").is_err());
        assert!(decode("{}", "null", "512").is_err());
        assert!(decode("{}", "null", "abc").is_err());
    }

    #[test]
    fn attributes_must_be_string_map_and_errors_hide_content() {
        let e = decode(r#"{"keyvaultName": 5}"#, "null", "420").unwrap_err();
        assert!(matches!(e, RequestError::Attributes(_)));
        let e = decode(r#"["hunter2-secret"]"#, "null", "420").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = decode("{}", r#"{"clientsecret": 42}"#, "420").unwrap_err();
        assert!(matches!(e, RequestError::Secrets(_)));
        let e = decode("{}", r#"{"clientsecret": "hunter2-secret""#, "420").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn tokens_attribute_is_moved_into_a_secret() {
        let i = decode(
            r#"{"csi.storage.k8s.io/serviceAccount.tokens":"{\"a\":1}","keyvaultName":"kv"}"#,
            "null",
            "420",
        )
        .unwrap();
        assert!(i.attributes.get(TOKENS_KEY).is_none());
        assert_eq!(
            i.service_account_tokens.as_ref().unwrap().expose(),
            "{\"a\":1}"
        );
        let dbg = format!("{i:?}");
        assert!(!dbg.contains("\\\"a\\\""), "{dbg}");
        assert!(dbg.contains("keyvaultName"));
        assert!(!dbg.contains("\"kv\""), "{dbg}");
    }
}
