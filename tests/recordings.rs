//! Every recorded Key Vault object body in `shared/testdata/keyvault-responses/`
//! (secrets, certificate-backed secrets, keys, certificates) served as recorded by
//! the fake Key Vault and mounted through the whole production pipeline (socket →
//! parameters → NMI token (directly on 127.0.0.1:2579) → Key Vault over HTTPS → rendering).
//! Mounted bytes are compared with the output of our own Go oracle where it has one
//! (`tests/fixtures/reference/`, produced by `tests/fixtures/reference/oracle`, which we
//! wrote from azure-behaviour.md §8 with Go's standard and x/crypto libraries; it is not
//! the reference provider's code, so agreement shows conformance to the spec as we read
//! it, not byte equality with the reference) and otherwise with the rule of
//! azure-behaviour.md §8.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use common::fake_azure::FakeAzure;
use common::fake_identity::FakeIdentity;
use common::fake_keyvault::{Access, Kind, testdata};
use common::reliability::{ConfiguredServer, TENANT, fake_flags};
use rust_azure_provider::grpc::proto::v1alpha1::MountRequest;

const VAULT: &str = "recordings";
const POD: (&str, &str) = ("default", "recordings-pod");

fn recordings() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/keyvault-responses");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{} must exist (shared/ beside the checkout): {e}",
                dir.display()
            )
        })
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".json")
                && !n.contains("versions")
                && !n.contains("list")
                && !n.starts_with("error")
        })
        .collect();
    names.sort();
    names
}

fn body(file: &str) -> serde_json::Value {
    serde_json::from_slice(&testdata(file)).unwrap()
}

fn version_of(file: &str) -> String {
    let b = body(file);
    let id = b["id"].as_str().or(b["key"]["kid"].as_str()).unwrap();
    id.rsplit('/').next().unwrap().to_owned()
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// What the spec (azure-behaviour.md §8) says is written for `file`: the Go oracle's bytes where
/// there are some, else the rule itself.
fn expected(file: &str) -> Vec<u8> {
    let stem = file.trim_end_matches(".json");
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/reference/{stem}.pem"));
    if let Ok(bytes) = std::fs::read(&reference) {
        return bytes;
    }
    let b = body(file);
    if file.starts_with("certificate-") {
        let der = base64::engine::general_purpose::STANDARD
            .decode(b["cer"].as_str().unwrap())
            .unwrap();
        return pem("CERTIFICATE", &der);
    }
    assert!(file.starts_with("secret-"), "no expectation for {file}");
    // Plain secrets and PEM-stored certificate-backed secrets are written unchanged.
    b["value"].as_str().unwrap().as_bytes().to_vec()
}

fn kind_of(file: &str) -> (Kind, &'static str) {
    if file.starts_with("secret-") {
        (Kind::Secrets, "secret")
    } else if file.starts_with("key-") {
        (Kind::Keys, "key")
    } else if file.starts_with("certificate-") {
        (Kind::Certificates, "cert")
    } else {
        panic!("unexpected recording {file}")
    }
}

#[tokio::test]
async fn every_recorded_object_mounts_as_the_spec_oracle_renders_it() {
    let files = recordings();
    assert!(
        files.len() >= 15,
        "expected the recorded object bodies, got {files:?}"
    );
    common::log_capture::install();
    let fake = FakeAzure::start().await;
    let _nmi = common::nmi::NmiPort::claim(fake.http_addr).await;
    let identity = FakeIdentity::install(&fake);
    identity.nmi_pod(POD.0, POD.1, "recordings-identity");
    identity.grant_vault(VAULT, Access::All);

    let mut objects = String::from("array:\n");
    for (i, file) in files.iter().enumerate() {
        let (kind, object_type) = kind_of(file);
        let name = file.trim_end_matches(".json");
        fake.keyvault
            .add_testdata(VAULT, kind, name, &version_of(file), 1_000 + i as i64, file);
        objects.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: {object_type}\n"
        ));
    }
    let attributes: BTreeMap<&str, String> = BTreeMap::from([
        ("usePodIdentity", "true".to_owned()),
        ("keyvaultName", VAULT.to_owned()),
        ("tenantID", TENANT.to_owned()),
        ("objects", objects),
        ("csi.storage.k8s.io/pod.namespace", POD.0.to_owned()),
        ("csi.storage.k8s.io/pod.name", POD.1.to_owned()),
    ]);

    let server = ConfiguredServer::start(&fake_flags(&fake, "30s", &[]));
    let response = server
        .client()
        .await
        .mount(MountRequest {
            attributes: serde_json::to_string(&attributes).unwrap(),
            secrets: "null".into(),
            target_path: String::new(),
            permission: "420".into(),
            current_object_version: vec![],
        })
        .await
        .unwrap_or_else(|s| panic!("mount failed: {:?} {}", s.code(), s.message()))
        .into_inner();

    assert_eq!(response.files.len(), files.len());
    let mut mismatches = vec![];
    for (file, (mounted, version)) in files
        .iter()
        .zip(response.files.iter().zip(&response.object_version))
    {
        let name = file.trim_end_matches(".json");
        assert_eq!(mounted.path, name);
        assert_eq!(mounted.mode, 0o644);
        let (_, object_type) = kind_of(file);
        assert_eq!(version.id, format!("{object_type}/{name}"));
        assert_eq!(version.version, version_of(file));
        if mounted.contents != expected(file) {
            mismatches.push(name.to_owned());
        }
    }
    assert!(
        mismatches.is_empty(),
        "rendered differently from the spec oracle: {mismatches:?}"
    );
    // One NMI token for the whole Mount, one GET per object.
    assert_eq!(identity.total(), 1);
    assert_eq!(
        fake.requests_to(&format!("{VAULT}.vault.azure.net")).len(),
        files.len()
    );
    server.stop().await;
    // Every rendered key, certificate chain and PKCS#12 and every stored value stays out of the
    // provider's trace-level log.
    let mut sensitive = identity.sensitive_strings();
    sensitive.extend(fake.keyvault.stored_values());
    for f in &response.files {
        sensitive.extend(common::log_capture::material(&f.contents));
    }
    common::log_capture::assert_clean(&sensitive);
}
