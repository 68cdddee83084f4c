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

/// The examples are templates: the only errors are the placeholders left for the user, and
/// with those filled in every example validates.
#[test]
fn every_example_validates_once_placeholders_are_filled_in() {
    let out = bin().arg("validate").args(examples()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errors: Vec<&str> = stdout.lines().filter(|l| l.contains(": error: ")).collect();
    assert!(errors.len() >= 7, "{stdout}");
    for line in &errors {
        assert!(
            line.contains("placeholder \"<") && line.contains("is still in the value"),
            "{line}"
        );
    }
    assert!(
        stdout.contains("seed-secretproviderclass.yaml:29: spc-myk8skv: error: spec.parameters.tenantId: placeholder \"<tenant id>\""),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut filled = vec![];
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            // Replace `<...>` inside quoted values only (comments keep theirs).
            let line = match (line.find("\"<"), line.rfind(">\"")) {
                (Some(a), Some(b)) if a < b => {
                    format!(
                        "{}\"72f988bf-86f1-41af-91ab-2d7cd011db47{}",
                        &line[..a],
                        &line[b + 1..]
                    )
                }
                _ => line.to_owned(),
            };
            out.push_str(&line);
            out.push('\n');
        }
        let path = dir.path().join(Path::new(&file).file_name().unwrap());
        std::fs::write(&path, out).unwrap();
        filled.push(path);
    }
    let out = bin().arg("validate").args(&filled).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("spc-myk8skv: ok (vault myk8skv, 1 object(s), identity: AAD pod identity"),
        "{stdout}"
    );
    assert!(
        stdout.contains("seed-secretproviderclass.yaml:27: spc-myk8skv: warning: spec.parameters.resourceGroup: unknown parameter \"resourceGroup\" ignored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("seed-pod.yaml: no SecretProviderClass (skipped)"),
        "{stdout}"
    );
}

fn validate_text(args: &[&str], yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spc.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = bin()
        .arg("validate")
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    let stdout =
        String::from_utf8_lossy(&out.stdout).replace(&path.display().to_string(), "spc.yaml");
    (out.status.code(), stdout)
}

fn spc(name: &str, objects: &str, extra: &str) -> String {
    let mut indented = String::new();
    for line in objects.lines() {
        indented.push_str("      ");
        indented.push_str(line);
        indented.push('\n');
    }
    format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\nspec:\n  provider: rust-azure\n{extra}  parameters:\n    keyvaultName: kv1\n    tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47\n    usePodIdentity: \"true\"\n    objects: |\n{indented}"
    )
}

/// Output paths Mount rejects before (duplicates) or after (history indexes, split files)
/// fetching: today's validate passed all of these.
#[test]
fn output_path_conflicts_are_errors() {
    let duplicate = spc(
        "dup",
        "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: same\n  - |\n    objectName: b\n    objectType: secret\n    objectAlias: same\n",
        "",
    );
    let (code, out) = validate_text(&[], &duplicate);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("spc.yaml:11: dup: error: spec.parameters.objects: objects secret/a (objects entry at index 0) and secret/b (objects entry at index 1) both write the file \"same\""),
        "{out}"
    );

    let history = spc(
        "hist",
        "array:\n  - |\n    objectName: h\n    objectType: secret\n    objectVersionHistory: 3\n  - |\n    objectName: x\n    objectType: secret\n    objectAlias: h/2\n",
        "",
    );
    let (code, out) = validate_text(&[], &history);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("both write the file \"h/2\""), "{out}");
    assert!(
        out.contains("Mount fails once Key Vault returns that many versions"),
        "{out}"
    );

    let file_dir = spc(
        "filedir",
        "array:\n  - |\n    objectName: h\n    objectType: secret\n    objectVersionHistory: 2\n  - |\n    objectName: x\n    objectType: secret\n    objectAlias: h\n",
        "",
    );
    let (code, out) = validate_text(&[], &file_dir);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("both write the file \"h\"")
            || out.contains("inside a directory of that name"),
        "{out}"
    );

    // `a.crt` collides only with the split-files extras of `a`.
    let split = spc(
        "split",
        "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: c\n    objectType: cert\n    objectAlias: a.crt\n",
        "",
    );
    let (code, out) = validate_text(&[], &split);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = validate_text(&["--write-cert-and-key-in-separate-files"], &split);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("both write the file \"a.crt\""), "{out}");
}

#[test]
fn secret_objects_must_name_files_that_will_exist() {
    let text = spc(
        "so",
        "array:\n  - |\n    objectName: tls\n    objectType: secret\n",
        "  secretObjects:\n    - secretName: tls\n      type: kubernetes.io/tls\n      data:\n        - key: tls.crt\n          objectName: tls.crt\n        - key: tls.key\n          objectName: tls.key\n",
    );
    let (code, out) = validate_text(&[], &text);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("spc.yaml:12: so: error: spec.secretObjects[0].data[0].objectName: \"tls.crt\" matches no mounted file; <file>.crt and <file>.key are written only with --write-cert-and-key-in-separate-files"),
        "{out}"
    );
    assert!(
        out.contains("spec.secretObjects[0].data[1].objectName"),
        "{out}"
    );
    let (code, out) = validate_text(&["--write-cert-and-key-in-separate-files"], &text);
    assert_eq!(code, Some(0), "{out}");
}

/// jmesPath files and per-object vaults: `validate` plans the extracted files (secretObjects
/// may name them; duplicates are errors), checks every entry and vault name, and summarises
/// the vaults.
#[test]
fn jmes_path_and_several_vaults_are_validated() {
    let good = spc(
        "features",
        "array:\n  - |\n    objectName: db\n    objectType: secret\n    keyvaultName: kv-two\n    jmesPath:\n      - path: user\n        objectAlias: db-user\n      - path: password\n        objectAlias: db-password\n        filePermission: \"0600\"\n  - |\n    objectName: db\n    objectType: secret\n    keyvaultName: kv-three\n    objectAlias: db-three\n",
        "  secretObjects:\n    - secretName: db\n      type: Opaque\n      data:\n        - key: user\n          objectName: db-user\n",
    );
    let (code, out) = validate_text(&[], &good);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        // kv1 serves no object here: every object names its own vault.
        out.contains("features: ok (vaults kv-two, kv-three, 2 object(s) (+2 jmesPath file(s))"),
        "{out}"
    );
    // Without the class-level vault, as every object names one.
    let (code, out) = validate_text(&[], &good.replace("    keyvaultName: kv1\n", ""));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ok (vaults kv-two, kv-three, 2 object(s)"),
        "{out}"
    );

    let bad = spc(
        "bad",
        "array:\n  - |\n    objectName: db\n    objectType: secret\n    jmesPath:\n      - path: \"user[\"\n        objectAlias: u\n  - |\n    objectName: k\n    objectType: key\n    jmesPath:\n      - path: n\n        objectAlias: n\n  - |\n    objectName: s\n    objectType: secret\n    keyvaultName: kv.vault.azure.net\n  - |\n    objectName: t\n    objectType: secret\n    jmesPath:\n      - path: a\n        objectAlias: t\n",
        "  secretObjects:\n    - secretName: db\n      type: Opaque\n      data:\n        - key: user\n          objectName: db-user\n",
    );
    let (code, out) = validate_text(&[], &bad);
    assert_eq!(code, Some(1), "{out}");
    for expected in [
        "spc.yaml:20: bad: error: spec.parameters.objects[0].jmesPath[0].path: failed to get objectType:secret, objectName:db, objectVersion:: jmesPath[0].path \"user[\" is not a valid JMESPath expression",
        "spc.yaml:26: bad: error: spec.parameters.objects[1].jmesPath: failed to get objectType:key, objectName:k, objectVersion:: jmesPath is only supported for objectType: secret",
        "spc.yaml:32: bad: error: spec.parameters.objects[2].keyvaultName: failed to get objectType:secret, objectName:s, objectVersion:: keyvaultName \"kv.vault.azure.net\" is not valid",
        "spc.yaml:17: bad: error: spec.parameters.objects: object secret/t (objects entry at index 3) writes the file \"t\" twice",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }

    // A secretObjects entry naming a file no object writes.
    let (code, out) = validate_text(
        &[],
        &good.replace("objectName: db-user\n", "objectName: db-username\n"),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "spec.secretObjects[0].data[0].objectName: \"db-username\" matches no mounted file"
        ),
        "{out}"
    );

    // A class still on `provider: azure`, checked with --check-azure: the extensions are
    // warnings, as the Azure provider ignores them.
    let (code, out) = validate_text(
        &["--check-azure"],
        &good.replace("provider: rust-azure", "provider: azure"),
    );
    assert_eq!(code, Some(0), "{out}");
    for expected in [
        "features: warning: spec.parameters.objects[0].jmesPath: jmesPath is a rust-azure extension; the Azure provider ignores it",
        "features: warning: spec.parameters.objects[0].keyvaultName: a per-object keyvaultName is a rust-azure extension",
        "features: warning: spec.parameters.objects[1].keyvaultName:",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let (code, out) = validate_text(
        &["--check-azure", "--strict"],
        &good.replace("provider: rust-azure", "provider: azure"),
    );
    assert_eq!(code, Some(1), "{out}");

    // Neither the class nor every object names a vault.
    let (code, out) = validate_text(
        &[],
        &spc(
            "novault",
            "array:\n  - |\n    objectName: a\n    objectType: secret\n    keyvaultName: kv-two\n  - |\n    objectName: b\n    objectType: secret\n",
            "",
        )
        .replace("    keyvaultName: kv1\n", ""),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("novault: error: spec.parameters.keyvaultName: keyvaultName is not provided: set spec.parameters.keyvaultName in the SecretProviderClass, or keyvaultName in every entry of spec.parameters.objects"),
        "{out}"
    );
}

/// Every problem of a class in one run, each with the field and its line.
#[test]
fn every_error_is_reported_with_field_and_line() {
    let text = r#"apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: many
spec:
  provider: rust-azure
  parameters:
    keyvaultName: "https://kv1.vault.azure.net/"
    tenantID: "<tenant id>"
    useVMManagedIdentity: "yes"
    cloudName: AzureMarsCloud
    userAssignedIdentityID: "00000000-0000-0000-0000-000000000000"
    objects: |
      array:
        - |
          objectName: one
          objectType: secrets
        - |
          objectName: two
          objectType: secret
          filePermission: "0999"
        - |
          objectName: three
          objectType: secret
"#;
    let (code, out) = validate_text(&[], text);
    assert_eq!(code, Some(1), "{out}");
    for expected in [
        "spc.yaml:8: many: error: spec.parameters.keyvaultName: failed to get vault: Invalid vault name",
        "spc.yaml:9: many: error: spec.parameters.tenantID: placeholder \"<tenant id>\"",
        "spc.yaml:10: many: error: spec.parameters.useVMManagedIdentity: failed to parse useVMManagedIdentity flag",
        "spc.yaml:11: many: error: spec.parameters.cloudName: cloudName AzureMarsCloud is not valid",
        "spc.yaml:12: many: error: spec.parameters.userAssignedIdentityID: the all-zero GUID is a placeholder",
        "spc.yaml:16: many: error: spec.parameters.objects[0].objectType: failed to get objectType:secrets, objectName:one",
        "spc.yaml:19: many: error: spec.parameters.objects[1].filePermission:",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert_eq!(out.matches(": error: ").count(), 7, "{out}");
}

/// `kubectl get secretproviderclasses -A -o yaml | rust-azure-provider validate -`.
#[test]
fn kubectl_list_on_stdin_skips_other_providers() {
    let good = spc(
        "good",
        "array:\n  - |\n    objectName: a\n    objectType: secret\n",
        "",
    );
    let mut item = String::new();
    for (i, line) in good.lines().enumerate() {
        item.push_str(if i == 0 { "- " } else { "  " });
        item.push_str(line);
        item.push('\n');
    }
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{item}- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n  metadata: {{name: vault-one, namespace: x}}\n  spec:\n    provider: vault\n    parameters: {{roleName: r}}\n- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n  metadata: {{name: old}}\n  spec:\n    provider: azure\n    parameters: {{keyvaultName: kv1}}\nmetadata:\n  resourceVersion: \"\"\n"
    );
    let mut child = bin()
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), list.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("<stdin>: good: ok (vault kv1"), "{stdout}");
    assert!(
        stdout.contains("<stdin>: vault-one: skipped: spec.provider is \"vault\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("<stdin>: old: skipped: spec.provider is \"azure\", not \"rust-azure\"; pass --check-azure"),
        "{stdout}"
    );
}

#[test]
fn check_azure_checks_azure_classes() {
    let text = spc(
        "old",
        "array:\n  - |\n    objectName: a\n    objectType: secret\n",
        "",
    )
    .replace("provider: rust-azure", "provider: azure");
    let (code, out) = validate_text(&[], &text);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = validate_text(&["--check-azure"], &text);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("old: warning: spec.provider: is \"azure\""),
        "{out}"
    );
    assert!(out.contains("old: ok ("), "{out}");
}

/// `objects` written as a YAML mapping instead of a block string names the class and field.
#[test]
fn objects_as_a_map_names_the_class_and_field() {
    let text = "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: mapped\nspec:\n  provider: rust-azure\n  parameters:\n    keyvaultName: kv1\n    objects:\n      array:\n        - objectName: a\n";
    let (code, out) = validate_text(&[], text);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("spc.yaml:9: error: document 0: SecretProviderClass \"mapped\": spec.parameters.objects: a mapping given; write it as a block string: `objects: |`"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spc.yaml");
    std::fs::write(&path, text).unwrap();
    let out = bin()
        .args(["mount", "--out"])
        .arg(dir.path().join("out"))
        .arg("--spc")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SecretProviderClass \"mapped\": spec.parameters.objects: a mapping given"),
        "{stderr}"
    );
}

#[test]
fn strict_mode_fails_on_warnings_and_says_so() {
    let text = spc(
        "w",
        "array:\n  - |\n    objectName: a\n    objectType: secret\n",
        "",
    )
    .replace(
        "    keyvaultName: kv1\n",
        "    keyvaultName: kv1\n    resourceGroup: rg\n",
    );
    let (code, out) = validate_text(&[], &text);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = validate_text(&["--strict"], &text);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("spc.yaml:9: w: warning: spec.parameters.resourceGroup: unknown parameter \"resourceGroup\" ignored"),
        "{out}"
    );
    assert!(
        out.contains("w: error: --strict: the 1 warning(s) above count as errors"),
        "{out}"
    );
}

#[test]
fn mount_accepts_octal_and_decimal_permissions_and_explains_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let spc_path = dir.path().join("spc.yaml");
    std::fs::write(
        &spc_path,
        spc(
            "m",
            "array:\n  - |\n    objectName: a\n    objectType: secret\n",
            "",
        ),
    )
    .unwrap();
    let socket = dir.path().join("absent.sock");
    for permission in ["0644", "420", "0o600"] {
        let out = bin()
            .args(["mount", "--permission", permission, "--spc"])
            .arg(&spc_path)
            .arg("--out")
            .arg(dir.path().join("out"))
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Accepted: the command gets as far as connecting, and says why that failed, once.
        assert_eq!(out.status.code(), Some(3), "{permission}: {stderr}");
        assert!(
            stderr.contains("cannot connect to") && stderr.contains("No such file or directory"),
            "{stderr}"
        );
        assert_eq!(
            stderr.matches("No such file or directory").count(),
            1,
            "{stderr}"
        );
    }
    // `--spc -`: the class piped in, as in the README's node debug recipe.
    let mut child = bin()
        .args(["mount", "--spc", "-", "--out"])
        .arg(dir.path().join("out"))
        .arg("--socket")
        .arg(&socket)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(&spc_path).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &text).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");

    let out = bin()
        .args(["mount", "--permission", "644", "--spc"])
        .arg(&spc_path)
        .args(["--out", "/nonexistent"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("leading 0 (0644)"), "{stderr}");

    let help = bin().args(["mount", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for code in [
        "Exit codes:",
        "  0  ",
        "  1  ",
        "  2  ",
        "  3  cannot connect",
    ] {
        assert!(help.contains(code), "{help}");
    }
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
        stdout.contains("objectName: \"nope\" matches no mounted file"),
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

/// A start-up failure prints its cause once (the error's own message already carries it).
#[test]
fn serve_failure_names_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = bin()
        .arg("--provider-dir")
        .arg(file.join("sub"))
        .args([
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("provider stopped"))
        .unwrap();
    assert!(line.contains("Not a directory"), "{line}");
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
}
