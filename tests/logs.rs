//! What an on-call engineer reads: the shipped binary with `--log-format json` at trace level for
//! our own code, through a rejected, a failing and a succeeding Mount (plus ignored unknown
//! parameters). Every line must be a JSON object, no value may be Rust `Debug` text (`None`,
//! `Some(..)`, a string recorded with its quotes), and the failure lines carry the gRPC code
//! exactly as the driver's pod event prints it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code fails the test on setup errors"
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::fake_azure::FakeAzure;
use common::fake_keyvault::Access;
use common::provider_process::ProviderProcess;
use common::reliability::{FakeEntra, Identity, file, mount_request, object_yaml};
use serde_json::Value;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_rust-azure-provider");
const VAULT: &str = "kv-logs";
const SP_SECRET: &str = "sp-secret-for-logs";
const TOKEN: &str = "kv-token-for-logs";

/// Every string in `v` (object keys excluded), with its JSON path.
fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                strings(item, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn is_debug_text(s: &str) -> bool {
    s == "None"
        || s.contains("Some(")
        || s.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "None")
        || (s.len() >= 2 && s.starts_with('"') && s.ends_with('"'))
}

#[tokio::test]
async fn json_logs_have_no_debug_text_and_failures_carry_the_grpc_code() {
    let fake = FakeAzure::start().await;
    let entra = FakeEntra::install(&fake);
    entra.principal(SP_SECRET, TOKEN);
    fake.keyvault
        .add_secret(VAULT, "s", "v1", "the-secret-value", 1_700_000_000);
    fake.keyvault.grant(VAULT, TOKEN, Access::All);
    let provider = ProviderProcess::start(
        Path::new(BIN),
        &fake.proxy_url(),
        fake.pki.ca_path(),
        &[
            "--log-format",
            "json",
            "--log-filter",
            "rust_azure_provider=trace",
        ],
    )
    .await
    .expect("provider starts");
    let mut client = provider.client().await.unwrap();
    let sp = Identity::sp(SP_SECRET);

    // Success, with an unknown top-level parameter and an unknown object field (both ignored
    // with a warning; only the second has an object index).
    let mut req = mount_request(
        VAULT,
        &[format!(
            "{}    objectColour: blue\n",
            object_yaml("s", "secret")
        )],
        &sp,
        "app",
    );
    let mut attrs: Value = serde_json::from_str(&req.attributes).unwrap();
    attrs["someUnknownParameter"] = Value::from("x");
    req.attributes = attrs.to_string();
    let resp = client.mount(req).await.expect("mount succeeds");
    assert_eq!(file(resp.get_ref(), "s"), b"the-secret-value");

    // Failure: the object does not exist.
    let err = client
        .mount(mount_request(
            VAULT,
            &[object_yaml("missing", "secret")],
            &sp,
            "app",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());

    // Rejected before anything else: the attributes are not JSON.
    let mut bad = mount_request(VAULT, &[object_yaml("s", "secret")], &sp, "app");
    bad.attributes = "not json".into();
    let err = client.mount(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    let (ok, logs) = provider
        .terminate(Duration::from_secs(20))
        .await
        .expect("provider stops");
    assert!(ok, "{logs}");

    let mut lines = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        let mut all = Vec::new();
        strings(&v, String::new(), &mut all);
        for (path, s) in all {
            assert!(!is_debug_text(s), "Rust debug text at {path}: {line}");
        }
        lines.push(v);
    }
    let with = |message: &str| -> Vec<&Value> {
        lines.iter().filter(|v| v["message"] == message).collect()
    };

    let failed = with("mount failed");
    assert_eq!(failed.len(), 1, "{logs}");
    assert_eq!(failed[0]["code"], "NotFound", "{logs}");
    assert_eq!(failed[0]["reason"], "keyvault_not_found", "{logs}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing")),
        "{logs}"
    );
    let rejected = with("mount request rejected");
    assert_eq!(rejected.len(), 1, "{logs}");
    assert_eq!(rejected[0]["code"], "InvalidArgument", "{logs}");
    assert_eq!(with("mount succeeded").len(), 1, "{logs}");

    let unknown = with("unknown parameter ignored");
    assert_eq!(unknown.len(), 2, "{logs}");
    let top = unknown
        .iter()
        .find(|v| v["parameter"] == "someUnknownParameter")
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(top.get("object_index").is_none(), "{top}");
    let field = unknown
        .iter()
        .find(|v| v["parameter"] == "objectColour")
        .unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(field["object_index"], 0, "{field}");

    // The secret and the credentials never reach the log.
    for s in ["the-secret-value", SP_SECRET, TOKEN] {
        assert!(!logs.contains(s), "{s} in the log");
    }
}
