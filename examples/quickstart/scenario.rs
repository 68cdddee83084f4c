//! The quickstart scenario, shared by `examples/quickstart` and `tests/quickstart.rs`: the seed
//! walkthrough ("Integrate Azure Key Vault with AKS — secrets as environment variables") on a
//! machine with no Azure and no cluster. A stand-in for Entra ID and Key Vault runs behind a
//! recording forward proxy with a generated CA, and one for NMI on 127.0.0.1:2579 (where NMI
//! listens on a node; loopback is never proxied); the shipped provider binary serves on a temporary
//! socket with `HTTPS_PROXY`/`HTTP_PROXY` and `--ca-bundle`; the shipped `mount` subcommand
//! performs the driver's Mount and atomic write; the Secret `test-secret` is built from the SPC's
//! `secretObjects` and the pod's `SECRET` variable is resolved from it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rust_azure_provider::spc::{self, PodInfo, SecretProviderClass};

use crate::common::fake_azure::FakeAzure;
use crate::common::fake_identity::{FakeIdentity, Source};
use crate::common::fake_keyvault::{Access, Body, Kind, Version};
use crate::common::nmi::NmiPort;
use crate::common::provider_process::ProviderProcess;

/// Key Vault of the walkthrough.
pub(crate) const VAULT: &str = "myk8skv";
/// The secret's name in the vault.
pub(crate) const SECRET_NAME: &str = "ExamplePassword";
/// The secret's value in the vault.
pub(crate) const SECRET_VALUE: &str = "hVFkk965BuUv";
/// Version id the stand-in vault reports.
pub(crate) const SECRET_VERSION: &str = "f4a1c3e2b5d64e7f8a9b0c1d2e3f4a5b";
/// Pod name of the walkthrough.
pub(crate) const POD_NAME: &str = "inject-secrets-from-akv";
/// Pod namespace of the walkthrough.
pub(crate) const POD_NAMESPACE: &str = "default";
/// A certificate-backed secret the stand-in vault also holds (not part of the walkthrough; for
/// clients that mount a `kubernetes.io/tls` Secret, e.g. `tests/interop/`).
pub(crate) const CERT_NAME: &str = "ingress-cert";
/// The real Key Vault recording served for [`CERT_NAME`]: a PKCS#12 (RSA 2048, self-signed) in
/// `shared/testdata/keyvault-responses/`.
pub(crate) const CERT_TESTDATA: &str = "secret-cert-backed-pkcs12-rsa.json";
/// A secret holding a JSON document that the stand-in vault also holds (not part of the
/// walkthrough; for clients that try `jmesPath` extraction, e.g. `tests/interop/`).
pub(crate) const JSON_SECRET_NAME: &str = "db-config";
/// The JSON document of [`JSON_SECRET_NAME`].
pub(crate) const JSON_SECRET_VALUE: &str = r#"{"username":"app-user","password":"Jm3sPath-7f3Kq9","host":"db.example.internal","port":5432}"#;
/// Version id the stand-in vault reports for [`JSON_SECRET_NAME`].
pub(crate) const JSON_SECRET_VERSION: &str = "0d7e4c1a9b2f4e6d8a3c5b7e9f1a2c4d";
/// Client id of the managed identity `aks2kvIdentity` NMI answers with.
pub(crate) const IDENTITY_CLIENT_ID: &str = "aks2kvIdentity-0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f";

/// Inputs of the scenario.
pub(crate) struct Options {
    /// The shipped `rust-azure-provider` binary.
    pub(crate) provider_bin: PathBuf,
    /// SecretProviderClass YAML (the seed's).
    pub(crate) spc: PathBuf,
    /// Pod YAML (the seed's); its `SECRET` variable is resolved from the synced Secret.
    pub(crate) pod: PathBuf,
}

/// Everything still running after the scenario (dropping it stops the provider and the fakes).
#[allow(
    dead_code,
    reason = "the example and the test each read a different subset; the rest must stay alive"
)]
pub(crate) struct Demo {
    /// Fake Azure and the proxy.
    pub(crate) fake: FakeAzure,
    /// The fake NMI's port.
    pub(crate) nmi: NmiPort,
    /// Identity endpoints.
    pub(crate) identity: FakeIdentity,
    /// The provider process.
    pub(crate) provider: ProviderProcess,
    /// Directory the files were written into.
    pub(crate) out_dir: tempfile::TempDir,
    /// Value of the pod's `SECRET` variable.
    pub(crate) secret_env: String,
}

/// Runs the scenario, narrating each step into `out`.
///
/// # Errors
/// Any failed step (with the provider's log when it is involved).
pub(crate) async fn run(opts: &Options, out: &mut dyn Write) -> anyhow::Result<Demo> {
    let spc = read_spc(&opts.spc)?;
    let (env_name, secret_ref, key_ref) = pod_secret_env(&opts.pod)?;

    // 1. Azure stand-in.
    let fake = FakeAzure::start().await;
    let nmi = NmiPort::claim(fake.http_addr).await;
    let identity = FakeIdentity::install(&fake);
    identity.grant_vault(VAULT, Access::All);
    identity.nmi_pod(POD_NAMESPACE, POD_NAME, IDENTITY_CLIENT_ID);
    fake.keyvault.add_secret(
        VAULT,
        SECRET_NAME,
        SECRET_VERSION,
        SECRET_VALUE,
        1_700_000_000,
    );
    fake.keyvault.add_secret(
        VAULT,
        JSON_SECRET_NAME,
        JSON_SECRET_VERSION,
        JSON_SECRET_VALUE,
        1_700_000_000,
    );
    let cert_version = add_cert_backed_secret(&fake)?;
    writeln!(out, "== 1. Azure stand-in (no Azure account needed)")?;
    writeln!(
        out,
        "   Key Vault {VAULT}.vault.azure.net holds secret {SECRET_NAME} (version {SECRET_VERSION})"
    )?;
    writeln!(
        out,
        "   and, for other clients, certificate-backed secret {CERT_NAME} (PKCS#12, version {cert_version})"
    )?;
    writeln!(
        out,
        "   and JSON secret {JSON_SECRET_NAME} (version {JSON_SECRET_VERSION}) for jmesPath extraction"
    )?;
    writeln!(
        out,
        "   NMI (aad-pod-identity) on 127.0.0.1:2579 answers for pod {POD_NAMESPACE}/{POD_NAME} with identity aks2kvIdentity"
    )?;
    writeln!(
        out,
        "   Entra ID and Key Vault behind a recording forward proxy {} using a CA generated just now ({})",
        fake.proxy_url(),
        fake.pki.ca_path().display()
    )?;

    // 2. The shipped provider, on its normal outbound path.
    let provider = ProviderProcess::start(
        &opts.provider_bin,
        &fake.proxy_url(),
        fake.pki.ca_path(),
        &[],
    )
    .await
    .with_context(|| format!("starting {}", opts.provider_bin.display()))?;
    writeln!(out, "== 2. Provider")?;
    writeln!(
        out,
        "   {} (pid {}) serving on {}",
        opts.provider_bin.display(),
        provider.pid(),
        provider.socket.display()
    )?;
    writeln!(
        out,
        "   outbound via HTTPS_PROXY=HTTP_PROXY={} with --ca-bundle {}; /healthz on {}, /metrics on {}",
        fake.proxy_url(),
        fake.pki.ca_path().display(),
        provider.health_addr,
        provider.metrics_addr
    )?;

    // 3. The driver's Mount and write, by the shipped `mount` subcommand.
    let out_dir = tempfile::Builder::new()
        .prefix("secrets-store-inline-")
        .tempdir()?;
    let pod = PodInfo {
        name: POD_NAME.into(),
        namespace: POD_NAMESPACE.into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        service_account: "default".into(),
    };
    let attributes = spc::driver_attributes(&spc, &pod, None);
    writeln!(out, "== 3. Driver: Mount on {}", provider.socket.display())?;
    writeln!(
        out,
        "   rust-azure-provider mount --spc {} --pod-name {POD_NAME} --pod-namespace {POD_NAMESPACE} --socket {} --out {}",
        opts.spc.display(),
        provider.socket.display(),
        out_dir.path().display()
    )?;
    writeln!(
        out,
        "   the request: secrets = null (no nodePublishSecretRef), permission = \"420\" (0644), attributes ="
    )?;
    for (k, v) in &attributes {
        let v = v.replace('\n', "\\n");
        writeln!(out, "     {k}: {v}")?;
    }
    let mut cmd = Command::new(&opts.provider_bin);
    cmd.env_clear()
        .arg("mount")
        .arg("--spc")
        .arg(&opts.spc)
        .args(["--pod-name", POD_NAME, "--pod-namespace", POD_NAMESPACE])
        .arg("--socket")
        .arg(&provider.socket)
        .arg("--out")
        .arg(out_dir.path());
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .context("mount subcommand task")?
        .context("cannot run the mount subcommand")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "the mount subcommand failed ({}):\n{}{}\n-- provider log --\n{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr),
            provider.logs()
        );
    }
    let object_versions: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("version "))
        .filter_map(|l| l.split_once(' '))
        .map(|(id, v)| (id.to_owned(), v.to_owned()))
        .collect();
    ensure!(
        object_versions == [(format!("secret/{SECRET_NAME}"), SECRET_VERSION.to_owned())],
        "unexpected object versions {object_versions:?}"
    );

    // 4. What went over the wire.
    writeln!(out, "== 4. Provider -> Azure (seen by the proxy) and NMI")?;
    let mut seen = Vec::new();
    for r in fake.proxy.records() {
        let line = format!("{} {}", r.method, r.target);
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    ensure!(
        !fake
            .proxy
            .records()
            .iter()
            .any(|r| r.host == "localhost" || r.host == "127.0.0.1"),
        "the provider sent loopback traffic through the proxy: {seen:?}"
    );
    ensure!(
        seen.iter()
            .any(|l| l == &format!("CONNECT {VAULT}.vault.azure.net:443")),
        "the provider did not reach Key Vault through the proxy: {seen:?}"
    );
    for l in &seen {
        writeln!(out, "   {l}")?;
    }
    let nmi_requests = identity.requests(Source::Nmi);
    ensure!(
        !nmi_requests.is_empty(),
        "the provider did not ask NMI for a token"
    );
    for r in nmi_requests {
        writeln!(
            out,
            "   {} http://{}{}?{} (direct to NMI: loopback is never proxied)",
            r.method,
            r.host_header,
            r.path,
            r.query.as_deref().unwrap_or("")
        )?;
        writeln!(
            out,
            "   NMI token request for podns={} podname={} -> token for {IDENTITY_CLIENT_ID}",
            r.header("podns").unwrap_or("?"),
            r.header("podname").unwrap_or("?"),
        )?;
    }
    for r in fake.requests_to(&format!("{VAULT}.vault.azure.net")) {
        writeln!(
            out,
            "   Key Vault: {} {}?{} (Authorization: {})",
            r.method,
            r.path,
            r.query.as_deref().unwrap_or(""),
            r.header("authorization").unwrap_or("none")
        )?;
    }
    let provider_log = provider.logs();
    for l in provider_log.lines().filter(|l| l.contains("mount{")) {
        writeln!(out, "   provider log: {}", l.trim())?;
    }

    // 5. Files written.
    writeln!(
        out,
        "== 5. Files written into {} (the driver's atomic writer)",
        out_dir.path().display()
    )?;
    let mut names: Vec<String> = std::fs::read_dir(out_dir.path())?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    names.sort();
    ensure!(
        names == [SECRET_NAME],
        "unexpected files in the mount: {names:?}"
    );
    for n in &names {
        let meta = std::fs::metadata(out_dir.path().join(n))?;
        writeln!(
            out,
            "   {n}  mode {:04o}  {} bytes",
            meta.permissions().mode() & 0o777,
            meta.len()
        )?;
        ensure!(
            meta.permissions().mode() & 0o777 == 0o644,
            "{n} has mode {:o}",
            meta.permissions().mode()
        );
    }
    writeln!(out, "   object versions:")?;
    for (id, v) in &object_versions {
        writeln!(out, "     {id} = {v}")?;
    }

    // 6. secretObjects -> Secret, and the pod's environment.
    writeln!(out, "== 6. Secret synced from secretObjects")?;
    let mut secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for so in &spc.spec.secret_objects {
        let mut data = BTreeMap::new();
        for d in &so.data {
            let bytes = std::fs::read(out_dir.path().join(&d.object_name)).with_context(|| {
                format!(
                    "secretObjects {}: objectName {} is not a mounted file",
                    so.secret_name, d.object_name
                )
            })?;
            data.insert(d.key.clone(), bytes);
        }
        write!(out, "{}", secret_yaml(so, &data))?;
        secrets.insert(so.secret_name.clone(), data);
    }
    let value = secrets
        .get(&secret_ref)
        .and_then(|d| d.get(&key_ref))
        .ok_or_else(|| anyhow!("the pod reads {secret_ref}/{key_ref}, which was not synced"))?;
    let secret_env = String::from_utf8(value.clone()).context("the secret is not UTF-8")?;
    ensure!(
        secret_env == SECRET_VALUE,
        "the pod would see a different value than Key Vault holds"
    );
    writeln!(
        out,
        "== 7. Pod {POD_NAME}: env {env_name} from secretKeyRef {secret_ref}/{key_ref}"
    )?;
    writeln!(out, "{env_name}={secret_env}")?;
    Ok(Demo {
        fake,
        nmi,
        identity,
        provider,
        out_dir,
        secret_env,
    })
}

/// Stores [`CERT_TESTDATA`] as secret [`CERT_NAME`] in [`VAULT`], served byte for byte; returns
/// the version (the one in the recording's `id`, so the version list and the body agree).
fn add_cert_backed_secret(fake: &FakeAzure) -> anyhow::Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/keyvault-responses")
        .join(CERT_TESTDATA);
    let body = std::fs::read(&path)
        .with_context(|| format!("cannot read the Key Vault recording {}", path.display()))?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{} is not JSON", path.display()))?;
    let version = parsed["id"]
        .as_str()
        .and_then(|id| id.rsplit('/').next())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("{} has no versioned id", path.display()))?
        .to_owned();
    let created = parsed["attributes"]["created"].as_i64().unwrap_or(1);
    fake.keyvault.add_version(
        VAULT,
        Kind::Secrets,
        CERT_NAME,
        Version {
            version: version.clone(),
            enabled: true,
            created,
            body: Body::Raw(body),
        },
    );
    Ok(version)
}

fn read_spc(path: &Path) -> anyhow::Result<SecretProviderClass> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut spcs = spc::parse_documents(&text).with_context(|| path.display().to_string())?;
    ensure!(
        spcs.len() == 1,
        "{} must hold exactly one SecretProviderClass",
        path.display()
    );
    Ok(spcs.remove(0))
}

/// The first container variable read from a Secret: (variable, secret name, key).
fn pod_secret_env(path: &Path) -> anyhow::Result<(String, String, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let pod: serde_norway::Value =
        serde_norway::from_str(&text).with_context(|| path.display().to_string())?;
    let containers = pod["spec"]["containers"]
        .as_sequence()
        .ok_or_else(|| anyhow!("{}: no spec.containers", path.display()))?;
    for c in containers {
        for e in c["env"].as_sequence().into_iter().flatten() {
            let r = &e["valueFrom"]["secretKeyRef"];
            if let (Some(name), Some(secret), Some(key)) =
                (e["name"].as_str(), r["name"].as_str(), r["key"].as_str())
            {
                return Ok((name.to_owned(), secret.to_owned(), key.to_owned()));
            }
        }
    }
    bail!(
        "{}: no container variable comes from a secretKeyRef",
        path.display()
    )
}

/// JSON string syntax is valid YAML double-quoted scalar syntax.
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The Secret the driver's sync controller creates, as YAML.
fn secret_yaml(
    so: &rust_azure_provider::spc::SecretObject,
    data: &BTreeMap<String, Vec<u8>>,
) -> String {
    let mut labels = so.labels.clone();
    labels.insert(
        "secrets-store.csi.k8s.io/managed".to_owned(),
        "true".to_owned(),
    );
    let mut y = String::from("---\napiVersion: v1\nkind: Secret\nmetadata:\n");
    y.push_str(&format!(
        "  name: {}\n  namespace: {}\n",
        q(&so.secret_name),
        q(POD_NAMESPACE)
    ));
    y.push_str("  labels:\n");
    for (k, v) in &labels {
        y.push_str(&format!("    {}: {}\n", q(k), q(v)));
    }
    if !so.annotations.is_empty() {
        y.push_str("  annotations:\n");
        for (k, v) in &so.annotations {
            y.push_str(&format!("    {}: {}\n", q(k), q(v)));
        }
    }
    let kind = if so.secret_type.is_empty() {
        "Opaque"
    } else {
        so.secret_type.as_str()
    };
    y.push_str(&format!("type: {}\ndata:\n", q(kind)));
    for (k, v) in data {
        y.push_str(&format!("  {}: {}\n", q(k), q(&B64.encode(v))));
    }
    y
}
