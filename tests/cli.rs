//! The shipped binary's offline `validate` command: exit codes and messages a
//! user can act on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rust-azure-provider"))
}

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates() {
    let out = bin().arg("validate").args(examples()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("spc-myk8skv: ok (vault myk8skv, 1 object(s), identity: AAD pod identity"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: unknown parameter \"resourceGroup\" ignored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("seed-pod.yaml: no SecretProviderClass (skipped)"),
        "{stdout}"
    );
}

#[test]
fn strict_mode_fails_on_warnings() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/seed-secretproviderclass.yaml");
    let out = bin()
        .args(["validate", "--strict"])
        .arg(seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn invalid_and_unreadable_files_have_distinct_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: bad}
spec:
  provider: rust-azure
  secretObjects:
    - secretName: s
      type: kubernetes.io/tls
      data: [{key: cert, objectName: nope}]
  parameters:
    keyvaultName: kv1
    tenantID: t
    objects: |
      array:
        - |
          objectName: a
          objectType: secret
          filePermission: "0900"
"#,
    )
    .unwrap();
    let out = bin().arg("validate").arg(&bad).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("filePermission"), "{stdout}");

    let fixed = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("0900", "0600");
    std::fs::write(&bad, fixed).unwrap();
    let out = bin().arg("validate").arg(&bad).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("objectName \"nope\" matches no mounted file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("key 'cert' is not supported. Only 'tls.key' and 'tls.crt' are supported"),
        "{stdout}"
    );

    let case = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("keyvaultName", "keyVaultName");
    std::fs::write(&bad, case).unwrap();
    let out = bin().arg("validate").arg(&bad).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("did you mean \"keyvaultName\""), "{stdout}");

    let out = bin()
        .arg("validate")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
