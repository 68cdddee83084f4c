//! Serde wire types of the Key Vault REST API 7.4 (secret, key and certificate bundles, version
//! list pages, error bodies); secret values are deserialized straight into `SecretString`.

use serde::{Deserialize, Deserializer};

use crate::secret::SecretString;

/// Object attributes (subset the provider uses).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Attributes {
    /// `false` when disabled; absent counts as enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Creation time, unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
    /// Last update, unix seconds.
    #[serde(default)]
    pub updated: Option<i64>,
    /// Not before, unix seconds.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Expiry, unix seconds.
    #[serde(default)]
    pub exp: Option<i64>,
}

impl Attributes {
    /// Absent `enabled` counts as enabled (azure-behaviour.md §9).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::new)
}

/// `GET /secrets/{name}/{version}` response.
#[derive(Debug, Deserialize)]
pub struct SecretBundle {
    /// The secret value (redacted in `Debug`).
    #[serde(deserialize_with = "deserialize_secret")]
    pub value: SecretString,
    /// `https://<vault>/secrets/<name>/<version>`.
    pub id: String,
    /// `application/x-pkcs12`, `application/x-pem-file` or anything the user set.
    #[serde(rename = "contentType", default)]
    pub content_type: Option<String>,
    /// Set when the secret backs a certificate.
    #[serde(default)]
    pub kid: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: Option<Attributes>,
}

impl SecretBundle {
    /// The version id (last path segment of `id`).
    pub fn version(&self) -> Option<&str> {
        version_from_id(&self.id)
    }
}

/// JSON Web Key (public part only is consumed).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct JsonWebKey {
    /// `https://<vault>/keys/<name>/<version>`.
    pub kid: String,
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct`, ...
    pub kty: String,
    /// Curve for EC keys (`P-256`, ...).
    #[serde(default)]
    pub crv: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default)]
    pub n: Option<String>,
    /// RSA public exponent (base64url).
    #[serde(default)]
    pub e: Option<String>,
    /// EC x coordinate (base64url).
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default)]
    pub y: Option<String>,
}

/// `GET /keys/{name}/{version}` response.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct KeyBundle {
    /// The key.
    pub key: JsonWebKey,
    /// Attributes.
    #[serde(default)]
    pub attributes: Option<Attributes>,
}

impl KeyBundle {
    /// The version id (last path segment of `key.kid`).
    pub fn version(&self) -> Option<&str> {
        version_from_id(&self.key.kid)
    }
}

/// `GET /certificates/{name}/{version}` response.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct CertificateBundle {
    /// `https://<vault>/certificates/<name>/<version>`.
    pub id: String,
    /// The certificate, base64 DER.
    pub cer: String,
    /// Key id of the backing key.
    #[serde(default)]
    pub kid: Option<String>,
    /// Secret id of the backing secret.
    #[serde(default)]
    pub sid: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: Option<Attributes>,
}

impl CertificateBundle {
    /// The version id (last path segment of `id`).
    pub fn version(&self) -> Option<&str> {
        version_from_id(&self.id)
    }
}

/// One item of a version list page.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct VersionItem {
    /// Item id (secrets, certificates).
    #[serde(default)]
    pub id: Option<String>,
    /// Item id (keys).
    #[serde(default)]
    pub kid: Option<String>,
    /// Attributes; items without attributes are skipped by version history.
    #[serde(default)]
    pub attributes: Option<Attributes>,
}

impl VersionItem {
    /// The version id: last path segment of `id`, else of `kid`.
    pub fn version(&self) -> Option<&str> {
        self.id
            .as_deref()
            .or(self.kid.as_deref())
            .and_then(version_from_id)
    }

    /// Enabled unless `attributes.enabled` is `false`; items without attributes are not enabled.
    pub fn is_enabled(&self) -> bool {
        self.attributes.as_ref().is_some_and(Attributes::is_enabled)
    }

    /// `attributes.created`, or 0 (the epoch) when absent.
    pub fn created(&self) -> i64 {
        self.attributes
            .as_ref()
            .and_then(|a| a.created)
            .unwrap_or(0)
    }
}

/// A page of `GET /{kind}/{name}/versions`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct VersionPage {
    /// Items of this page.
    #[serde(default)]
    pub value: Vec<VersionItem>,
    /// URL of the next page (`null` or absent on the last page).
    #[serde(rename = "nextLink", default)]
    pub next_link: Option<String>,
}

/// Key Vault error body `{"error": {...}}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` member of an error body.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// `SecretNotFound`, `Forbidden`, `Unauthorized`, `Throttled`, ...
    #[serde(default)]
    pub code: Option<String>,
    /// Service message (contains no secret material).
    #[serde(default)]
    pub message: Option<String>,
    /// More specific code (`SecretDisabled`, `ForbiddenByPolicy`, ...).
    #[serde(default)]
    pub innererror: Option<InnerError>,
}

/// Nested error code.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct InnerError {
    /// The code.
    #[serde(default)]
    pub code: Option<String>,
}

/// The last non-empty path segment of an object id URL (`.../secrets/name/<version>`).
pub fn version_from_id(id: &str) -> Option<&str> {
    let path = id.split(['?', '#']).next().unwrap_or(id);
    let path = path.trim_end_matches('/');
    // An id without a version (`.../secrets/name`) has only kind and name after the host.
    let after_scheme = path.split_once("://").map_or(path, |(_, rest)| rest);
    let segments: Vec<&str> = after_scheme.split('/').collect();
    if segments.len() < 4 {
        return None;
    }
    segments.last().copied().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn testdata(name: &str) -> Vec<u8> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/keyvault-responses")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("testdata {} missing: {e}", p.display()))
    }

    #[test]
    fn version_from_id_cases() {
        assert_eq!(
            version_from_id("https://kv.vault.azure.net/secrets/a/0123abc"),
            Some("0123abc")
        );
        assert_eq!(
            version_from_id("https://kv.vault.azure.net:443/keys/a/v1/"),
            Some("v1")
        );
        assert_eq!(
            version_from_id("https://kv.vault.azure.net/secrets/a"),
            None
        );
        assert_eq!(version_from_id(""), None);
    }

    #[test]
    fn secret_bundle_parses_and_redacts() {
        let b: SecretBundle = serde_json::from_slice(&testdata("secret-plain.json")).unwrap();
        assert!(!b.value.is_empty());
        assert!(b.version().is_some());
        assert!(b.content_type.is_none());
        let dbg = format!("{b:?}");
        assert!(!dbg.contains(b.value.expose()), "{dbg}");

        let b: SecretBundle =
            serde_json::from_slice(&testdata("secret-cert-backed-pem-rsa.json")).unwrap();
        assert_eq!(b.content_type.as_deref(), Some("application/x-pem-file"));
        assert!(b.kid.is_some());
    }

    #[test]
    fn key_and_cert_bundles_parse() {
        let k: KeyBundle = serde_json::from_slice(&testdata("key-rsa.json")).unwrap();
        assert_eq!(k.key.kty, "RSA");
        assert!(k.key.n.is_some() && k.key.e.is_some());
        assert!(k.version().is_some());
        let k: KeyBundle = serde_json::from_slice(&testdata("key-ec-p256.json")).unwrap();
        assert_eq!(k.key.crv.as_deref(), Some("P-256"));
        let k: KeyBundle =
            serde_json::from_slice(&testdata("key-rsa-hsm-managedhsm.json")).unwrap();
        assert_eq!(k.key.kty, "RSA-HSM");
        let c: CertificateBundle =
            serde_json::from_slice(&testdata("certificate-rsa.json")).unwrap();
        assert!(!c.cer.is_empty());
    }

    #[test]
    fn version_pages_parse() {
        let p: VersionPage =
            serde_json::from_slice(&testdata("secret-versions-page.json")).unwrap();
        assert_eq!(p.value.len(), 6);
        assert!(p.next_link.is_some());
        assert!(p.value.iter().all(|i| i.is_enabled() && i.created() > 0));
        let p: VersionPage =
            serde_json::from_slice(&testdata("secret-versions-page-last.json")).unwrap();
        assert!(p.next_link.is_none());
        let p: VersionPage = serde_json::from_slice(&testdata("key-versions-page.json")).unwrap();
        assert_eq!(p.value.len(), 25);
        assert!(p.value[0].kid.is_some() && p.value[0].version().is_some());
        let p: VersionPage =
            serde_json::from_slice(&testdata("certificate-versions-page.json")).unwrap();
        assert!(!p.value.is_empty());
    }

    #[test]
    fn error_bodies_parse() {
        let e: ErrorBody =
            serde_json::from_slice(&testdata("error-forbidden-secret-disabled.json")).unwrap();
        assert_eq!(e.error.code.as_deref(), Some("Forbidden"));
        assert_eq!(
            e.error.innererror.and_then(|i| i.code).as_deref(),
            Some("SecretDisabled")
        );
        for f in [
            "error-certificate-not-found.json",
            "error-key-not-found.json",
            "error-secret-not-found.json",
            "error-secret-not-found-api-7.0.json",
            "error-unauthorized-challenge.json",
        ] {
            let e: ErrorBody = serde_json::from_slice(&testdata(f)).unwrap();
            assert!(e.error.code.is_some(), "{f}");
        }
    }

    #[test]
    fn version_item_without_attributes_is_disabled() {
        let i: VersionItem =
            serde_json::from_str(r#"{"id":"https://kv.vault.azure.net/secrets/a/v"}"#).unwrap();
        assert!(!i.is_enabled());
        assert_eq!(i.created(), 0);
        let i: VersionItem = serde_json::from_str(
            r#"{"id":"https://kv.vault.azure.net/secrets/a/v","attributes":{}}"#,
        )
        .unwrap();
        assert!(i.is_enabled());
    }
}
