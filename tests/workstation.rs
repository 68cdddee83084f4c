//! `mount --credential`: the whole Mount in the shipped binary with azure_identity's Azure CLI
//! credential, against the fake Key Vault behind the recording HTTPS proxy. A stand-in `az`
//! (a shell script first on PATH) answers `az account get-access-token` as the real CLI does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::fake_azure::FakeAzure;
use common::fake_keyvault::Access;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const VAULT: &str = "myk8skv";
const SECRET_VALUE: &str = "hVFkk965BuUv";
const VERSION: &str = "7f3c1e0a9b8d4c2e8f6a5b4c3d2e1f00";
const CLI_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.workstation-cli-token.sig";
const KV_SCOPE: &str = "https://vault.azure.net/.default";

/// How the stand-in `az` behaves.
enum Az {
    /// Signed in: a token valid for `lifetime_secs` (negative: already expired).
    LoggedIn { lifetime_secs: i64 },
    /// `az login` never ran.
    NotLoggedIn,
    /// No `az` on PATH at all.
    Missing,
}

/// A directory for PATH holding the stand-in (or nothing, for [`Az::Missing`]); the stand-in
/// appends its arguments to `<dir>/az.args`. It uses shell builtins only, so PATH can be just
/// this directory.
fn stand_in_az(dir: &Path, az: &Az) {
    let args_log = dir.join("az.args");
    let body = match az {
        Az::Missing => return,
        Az::NotLoggedIn => {
            "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n".to_owned()
        }
        Az::LoggedIn { lifetime_secs } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let expires = i64::try_from(now).unwrap() + lifetime_secs;
            let expires_on_local = humantime::format_rfc3339_seconds(
                UNIX_EPOCH + Duration::from_secs(u64::try_from(expires).unwrap()),
            )
            .to_string()
            .replace('T', " ")
            .replace('Z', ".000000");
            let json = serde_json::json!({
                "accessToken": CLI_TOKEN,
                "expiresOn": expires_on_local,
                "expires_on": expires,
                "subscription": "00000000-0000-0000-0000-000000000001",
                "tenant": TENANT,
                "tokenType": "Bearer",
            });
            // printf is a builtin; the JSON holds no single quote.
            format!("printf '%s\\n' '{json:#}'\n")
        }
    };
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nif [ \"$1 $2\" != 'account get-access-token' ]; then echo \"stand-in az: unexpected arguments: $*\" >&2; exit 2; fi\n{body}",
        args_log.display()
    );
    let path = dir.join("az");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The seed SecretProviderClass with its placeholders filled in.
fn seed_spc(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy/examples/seed-secretproviderclass.yaml"))
        .unwrap()
        .replace("<tenant id>", TENANT)
        .replace("<subscription id>", "00000000-0000-0000-0000-000000000001");
    let path = dir.join("spc.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Run {
    output: Output,
    out_dir: PathBuf,
    az_args: String,
    _dir: tempfile::TempDir,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

async fn fake_with_seed_vault() -> FakeAzure {
    let fake = FakeAzure::start().await;
    fake.keyvault.add_secret(
        VAULT,
        "ExamplePassword",
        VERSION,
        SECRET_VALUE,
        1_700_000_000,
    );
    fake.keyvault.grant(VAULT, CLI_TOKEN, Access::All);
    fake
}

/// Runs `mount --credential <credential>` with only the stand-in's directory on PATH and the
/// fake's proxy and CA.
async fn mount(fake: &FakeAzure, az: Az, credential: &str) -> Run {
    mount_with(fake, az, credential, true).await
}

async fn mount_with(fake: &FakeAzure, az: Az, credential: &str, ca_bundle: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    stand_in_az(&bin_dir, &az);
    let spc = seed_spc(dir.path());
    let out_dir = dir.path().join("out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rust-azure-provider"));
    cmd.env_clear()
        .env("PATH", &bin_dir)
        .env("HOME", dir.path())
        .env("HTTPS_PROXY", fake.proxy_url())
        .env("HTTP_PROXY", fake.proxy_url())
        .args(["mount", "--credential", credential, "--spc"])
        .arg(&spc)
        .arg("--out")
        .arg(&out_dir)
        .args(["--timeout", "30s"]);
    if ca_bundle {
        cmd.arg("--ca-bundle").arg(fake.pki.ca_path());
    }
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let az_args = std::fs::read_to_string(bin_dir.join("az.args")).unwrap_or_default();
    Run {
        output,
        out_dir,
        az_args,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_class_mounts_example_password_with_az_login() {
    let fake = fake_with_seed_vault().await;
    let run = mount(
        &fake,
        Az::LoggedIn {
            lifetime_secs: 3600,
        },
        "azure-cli",
    )
    .await;
    let (stdout, stderr) = (run.stdout(), run.stderr());
    assert_eq!(run.output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        format!(
            "file ExamplePassword mode 0644 12 bytes\nversion secret/ExamplePassword {VERSION}\n"
        )
    );
    let file = run.out_dir.join("ExamplePassword");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), SECRET_VALUE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    // The SDK's exact argv: a scope, the class's tenant, JSON output.
    assert_eq!(
        run.az_args.trim(),
        format!("account get-access-token -o json --scope {KV_SCOPE} --tenant {TENANT}")
    );
    // The seed's identity parameters are reported as ignored; the empty one is not.
    for key in ["usePodIdentity", "useVMManagedIdentity"] {
        assert!(
            stderr.contains(&format!(
                "warning: spec.parameters.{key} is ignored with --credential azure-cli"
            )),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("userAssignedIdentityID"), "{stderr}");
    assert!(!stdout.contains(CLI_TOKEN) && !stderr.contains(CLI_TOKEN));
    assert!(!stdout.contains(SECRET_VALUE) && !stderr.contains(SECRET_VALUE));
    // Key Vault was reached through HTTPS_PROXY (the fake accepts only the CLI's token), and
    // nothing asked Entra ID, IMDS or NMI.
    let records = fake.proxy.records();
    assert!(
        !records.is_empty()
            && records
                .iter()
                .all(|r| r.method == "CONNECT" && r.target == "myk8skv.vault.azure.net:443"),
        "{:?}",
        fake.proxy.hosts()
    );
    let kv = fake.requests_to("myk8skv.vault.azure.net");
    assert!(!kv.is_empty());
    assert_eq!(fake.requests().len(), kv.len(), "{:?}", fake.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn developer_tools_chain_uses_az_login() {
    let fake = fake_with_seed_vault().await;
    let run = mount(
        &fake,
        Az::LoggedIn {
            lifetime_secs: 3600,
        },
        "developer-tools",
    )
    .await;
    let (stdout, stderr) = (run.stdout(), run.stderr());
    assert_eq!(run.output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("version secret/ExamplePassword {VERSION}")));
    assert!(
        stderr.contains(
            "spec.parameters.usePodIdentity is ignored with --credential developer-tools"
        ),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(run.out_dir.join("ExamplePassword")).unwrap(),
        SECRET_VALUE
    );
}

/// Each failure is the provider's coded error (exit 1), says what to do, and writes nothing.
fn assert_refused(run: &Run, expected: &[&str]) {
    let (stdout, stderr) = (run.stdout(), run.stderr());
    assert_eq!(run.output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("Mount failed: code = Unauthenticated desc = Azure CLI credential: "),
        "{stderr}"
    );
    for text in expected {
        assert!(stderr.contains(text), "missing {text:?} in {stderr}");
    }
    assert!(!stderr.contains(CLI_TOKEN), "{stderr}");
    assert!(!stderr.contains("To troubleshoot"), "{stderr}");
    assert!(!run.out_dir.join("ExamplePassword").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_az_is_a_clear_error() {
    let fake = fake_with_seed_vault().await;
    let run = mount(&fake, Az::Missing, "azure-cli").await;
    assert_refused(&run, &["az not found on PATH", "az login"]);
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn not_logged_in_az_is_a_clear_error() {
    let fake = fake_with_seed_vault().await;
    let run = mount(&fake, Az::NotLoggedIn, "azure-cli").await;
    assert_refused(
        &run,
        &[
            "Please run 'az login' to setup account.",
            "sign in with `az login`",
        ],
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_az_token_is_a_clear_error() {
    let fake = fake_with_seed_vault().await;
    let run = mount(
        &fake,
        Az::LoggedIn {
            lifetime_secs: -600,
        },
        "azure-cli",
    )
    .await;
    assert_refused(
        &run,
        &[
            "handed out a token that expired at ",
            "sign in with `az login`",
        ],
    );
    assert!(fake.requests().is_empty());
}

/// Key Vault is reached with the project's client: without `--ca-bundle` the fake's certificate is
/// not trusted and the Mount fails as the provider's would (no request reached Key Vault).
#[tokio::test(flavor = "multi_thread")]
async fn key_vault_trust_comes_from_ca_bundle() {
    let fake = fake_with_seed_vault().await;
    let run = mount_with(
        &fake,
        Az::LoggedIn {
            lifetime_secs: 3600,
        },
        "azure-cli",
        false,
    )
    .await;
    let (stdout, stderr) = (run.stdout(), run.stderr());
    assert_eq!(run.output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Mount failed: code = Unavailable desc = "),
        "{stderr}"
    );
    assert!(stderr.contains("myk8skv.vault.azure.net"), "{stderr}");
    assert!(!run.out_dir.join("ExamplePassword").exists());
    assert!(fake.requests().is_empty());
}
