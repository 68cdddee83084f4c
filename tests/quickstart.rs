//! The quickstart (`bash scripts/quickstart.sh`) works: the same scenario as
//! `examples/quickstart`, run against the binary cargo built for the tests.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code fails the test on setup errors"
)]

mod common;
#[path = "../examples/quickstart/scenario.rs"]
mod scenario;

use std::path::PathBuf;

#[tokio::test]
async fn quickstart_ends_with_the_secret() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let opts = scenario::Options {
        provider_bin: PathBuf::from(env!("CARGO_BIN_EXE_rust-azure-provider")),
        spc: root.join("deploy/examples/seed-secretproviderclass.yaml"),
        pod: root.join("deploy/examples/seed-pod.yaml"),
    };
    let mut out = Vec::new();
    let demo = scenario::run(&opts, &mut out).await;
    let text = String::from_utf8(out).unwrap();
    let demo = demo.unwrap_or_else(|e| panic!("quickstart failed: {e:#}\n{text}"));
    assert_eq!(demo.secret_env, "hVFkk965BuUv");
    assert_eq!(text.lines().last(), Some("SECRET=hVFkk965BuUv"), "{text}");
    // The Secret as the sync controller creates it.
    for line in [
        "kind: Secret",
        "  name: \"test-secret\"",
        "    \"secrets-store.csi.k8s.io/managed\": \"true\"",
        "type: \"Opaque\"",
        "  \"key\": \"aFZGa2s5NjVCdVV2\"",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // The narrative names the hosts the proxy saw and the file with its mode.
    assert!(
        text.contains("GET http://localhost:2579/host/token/?resource=https://vault.azure.net"),
        "{text}"
    );
    assert!(
        text.contains("CONNECT myk8skv.vault.azure.net:443"),
        "{text}"
    );
    assert!(
        text.contains("ExamplePassword  mode 0644  12 bytes"),
        "{text}"
    );
    assert!(text.contains("secret/ExamplePassword = "), "{text}");
    // The provider log is free of the secret and of the token NMI issued.
    let logs = demo.provider.logs();
    assert!(!logs.contains("hVFkk965BuUv"), "{logs}");
    for s in demo.identity.sensitive_strings() {
        assert!(!logs.contains(&s));
    }
}
