//! SecretProviderClass documents as users write them (YAML, API versions `v1`
//! and `v1alpha1`), and the request the driver builds from one.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::mount::request::{
    POD_NAME_KEY, POD_NAMESPACE_KEY, POD_UID_KEY, SERVICE_ACCOUNT_NAME_KEY, SPC_KEY, TOKENS_KEY,
};

/// API versions the driver serves for SecretProviderClass.
pub const API_VERSIONS: [&str; 2] = [
    "secrets-store.csi.x-k8s.io/v1",
    "secrets-store.csi.x-k8s.io/v1alpha1",
];

/// One SecretProviderClass.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SecretProviderClass {
    /// `secrets-store.csi.x-k8s.io/v1` or `v1alpha1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `SecretProviderClass`.
    #[serde(default)]
    pub kind: String,
    /// Name and namespace.
    #[serde(default)]
    pub metadata: Metadata,
    /// The spec.
    pub spec: Spec,
}

/// Object metadata (the parts we use).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Metadata {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (empty: the pod's).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `spec` of a SecretProviderClass.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Spec {
    /// Provider name; `rust-azure` for this provider.
    #[serde(default)]
    pub provider: String,
    /// Provider parameters (all strings).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Kubernetes Secrets to sync from mounted files.
    #[serde(rename = "secretObjects", default)]
    pub secret_objects: Vec<SecretObject>,
}

/// `spec.secretObjects[]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SecretObject {
    /// Secret name.
    #[serde(rename = "secretName", default)]
    pub secret_name: String,
    /// Secret type.
    #[serde(rename = "type", default)]
    pub secret_type: String,
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Data items.
    #[serde(default)]
    pub data: Vec<SecretObjectData>,
}

/// `spec.secretObjects[].data[]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SecretObjectData {
    /// Relative path of a mounted file.
    #[serde(rename = "objectName", default)]
    pub object_name: String,
    /// Key in the Secret.
    #[serde(default)]
    pub key: String,
}

/// Problems reading SecretProviderClass documents.
#[derive(Debug, thiserror::Error)]
pub enum SpcError {
    /// Not YAML.
    #[error("document {index}: {message}")]
    Yaml {
        /// Position of the document in the file (0-based).
        index: usize,
        /// Parser message.
        message: String,
    },
    /// A SecretProviderClass with a field of the wrong shape.
    #[error("document {index}: SecretProviderClass {name:?}: {field}: {message}")]
    Shape {
        /// Position of the document in the file (0-based).
        index: usize,
        /// `metadata.name` (empty when absent).
        name: String,
        /// Path of the field, e.g. `spec.parameters.objects`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No SecretProviderClass in the file.
    #[error("no SecretProviderClass found")]
    Empty,
}

/// Kinds whose `items` hold objects (`kubectl get spc -A -o yaml` prints a `List`).
const LIST_KINDS: [&str; 2] = ["List", "SecretProviderClassList"];

/// Reads every SecretProviderClass of a YAML stream, including the items of `kind: List`
/// documents; other kinds are skipped. A document that is not YAML ends the stream (the
/// parser cannot resynchronise); a class of the wrong shape is reported and the rest are read.
///
/// # Errors
/// [`SpcError::Yaml`] when a document is not YAML.
pub fn read_documents(text: &str) -> Result<Vec<Result<SecretProviderClass, SpcError>>, SpcError> {
    let mut out = vec![];
    for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = serde_norway::Value::deserialize(doc).map_err(|e| SpcError::Yaml {
            index,
            message: e.to_string(),
        })?;
        let kind = value.get("kind").and_then(serde_norway::Value::as_str);
        if kind.is_some_and(|k| LIST_KINDS.contains(&k)) {
            let items = value
                .get("items")
                .and_then(serde_norway::Value::as_sequence)
                .map(Vec::as_slice)
                .unwrap_or_default();
            out.extend(
                items
                    .iter()
                    .filter(|v| is_spc(v))
                    .map(|v| from_value(index, v.clone())),
            );
        } else if is_spc(&value) {
            out.push(from_value(index, value));
        }
    }
    Ok(out)
}

/// Reads every SecretProviderClass document of a YAML stream (and `kind: List` items); other
/// kinds are skipped.
///
/// # Errors
/// [`SpcError`] for the first document that does not parse, or [`SpcError::Empty`].
pub fn parse_documents(text: &str) -> Result<Vec<SecretProviderClass>, SpcError> {
    let out = read_documents(text)?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(SpcError::Empty);
    }
    Ok(out)
}

fn is_spc(value: &serde_norway::Value) -> bool {
    value.get("kind").and_then(serde_norway::Value::as_str) == Some("SecretProviderClass")
}

/// Decodes one class, naming it and the offending field when the shape is wrong: the
/// parser alone would say only "invalid type: map, expected a string".
fn from_value(index: usize, value: serde_norway::Value) -> Result<SecretProviderClass, SpcError> {
    use serde_norway::Value;
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let shape = |field: String, message: String| SpcError::Shape {
        index,
        name: name.clone(),
        field,
        message,
    };
    let spec = value.get("spec");
    if spec.is_none_or(|s| !s.is_mapping()) {
        return Err(shape(
            "spec".into(),
            "missing or not a mapping; a SecretProviderClass needs spec.provider and spec.parameters".into(),
        ));
    }
    if let Some(params) = spec.and_then(|s| s.get("parameters")) {
        let Some(map) = params.as_mapping() else {
            return Err(shape(
                "spec.parameters".into(),
                format!(
                    "{} given; it must be a mapping of parameter names to strings",
                    type_name(params)
                ),
            ));
        };
        for (k, v) in map {
            let key = k.as_str().unwrap_or("?");
            if v.is_string() {
                continue;
            }
            let hint = if key == "objects" {
                "write it as a block string: `objects: |` followed by an indented `array:` of `- |` entries"
            } else {
                "every parameter is a string: quote the value (e.g. \"true\")"
            };
            return Err(shape(
                format!("spec.parameters.{key}"),
                format!("{} given; {hint}", type_name(v)),
            ));
        }
    }
    serde_norway::from_value(value).map_err(|e| shape("spec".into(), e.to_string()))
}

fn type_name(v: &serde_norway::Value) -> &'static str {
    use serde_norway::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The pod side of a mount, as kubelet describes it to the driver.
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// Service account name.
    pub service_account: String,
}

/// Builds the `attributes` JSON the driver (v1.6) sends for `spc` mounted by `pod`:
/// SPC parameters, then the volume context (`secretProviderClass`, pod keys,
/// `ephemeral`), then the tokens attribute when given.
pub fn driver_attributes(
    spc: &SecretProviderClass,
    pod: &PodInfo,
    tokens_json: Option<&str>,
) -> BTreeMap<String, String> {
    let mut attrs = spc.spec.parameters.clone();
    attrs.insert(SPC_KEY.into(), spc.metadata.name.clone());
    attrs.insert(POD_NAME_KEY.into(), pod.name.clone());
    attrs.insert(POD_NAMESPACE_KEY.into(), pod.namespace.clone());
    attrs.insert(POD_UID_KEY.into(), pod.uid.clone());
    attrs.insert(SERVICE_ACCOUNT_NAME_KEY.into(), pod.service_account.clone());
    attrs.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
    if let Some(t) = tokens_json {
        attrs.insert(TOKENS_KEY.into(), t.to_owned());
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../deploy/examples/seed-secretproviderclass.yaml");

    #[test]
    fn seed_example_parses() {
        let spcs = parse_documents(SEED).unwrap();
        assert_eq!(spcs.len(), 1);
        let spc = &spcs[0];
        assert_eq!(spc.metadata.name, "spc-myk8skv");
        assert_eq!(spc.spec.provider, "rust-azure");
        assert_eq!(spc.spec.parameters["keyvaultName"], "myk8skv");
        assert_eq!(spc.spec.secret_objects[0].secret_name, "test-secret");
        assert_eq!(
            spc.spec.secret_objects[0].data[0].object_name,
            "ExamplePassword"
        );
        let attrs = driver_attributes(
            spc,
            &PodInfo {
                name: "inject-secrets-from-akv".into(),
                namespace: "default".into(),
                uid: "u".into(),
                service_account: "default".into(),
            },
            None,
        );
        assert_eq!(attrs[SPC_KEY], "spc-myk8skv");
        assert_eq!(attrs[POD_NAME_KEY], "inject-secrets-from-akv");
        assert!(!attrs.contains_key(TOKENS_KEY));
    }

    #[test]
    fn list_items_are_read_and_shape_errors_name_class_and_field() {
        let mut items = String::new();
        for (i, line) in SEED.lines().filter(|l| !l.starts_with('#')).enumerate() {
            items.push_str(if i == 0 { "- " } else { "  " });
            items.push_str(line);
            items.push('\n');
        }
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n{items}- kind: Pod\n  metadata: {{name: p}}\n"
        );
        let spcs = parse_documents(&list).unwrap();
        assert_eq!(spcs.len(), 1);
        assert_eq!(spcs[0].metadata.name, "spc-myk8skv");

        let bad = "kind: SecretProviderClass\nmetadata: {name: b}\nspec:\n  parameters:\n    usePodIdentity: true\n";
        let err = parse_documents(bad).unwrap_err().to_string();
        assert!(
            err.contains("SecretProviderClass \"b\": spec.parameters.usePodIdentity: a boolean given; every parameter is a string: quote the value"),
            "{err}"
        );
    }

    #[test]
    fn other_kinds_are_skipped_and_empty_is_an_error() {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\n---\n{SEED}");
        assert_eq!(parse_documents(&text).unwrap().len(), 1);
        assert!(matches!(
            parse_documents("kind: Pod\n"),
            Err(SpcError::Empty)
        ));
        assert!(parse_documents("kind: SecretProviderClass\nspec: [1]\n").is_err());
    }
}
