//! Azure stand-in for `tests/cluster/run.sh` (test infrastructure only): fake Entra ID, NMI and
//! Key Vault behind the recording HTTPS proxy with a generated CA, as in `examples/quickstart`,
//! holding what the cluster scenarios need, plus a loopback control endpoint so a scenario can
//! change a Key Vault value at run time (rotation).
//!
//! Prints `HTTPS_PROXY=`, `CA_BUNDLE=`, `ADMIN_ADDR=` and `ADMIN_HOST=` and then `READY`, and runs
//! until SIGTERM / Ctrl-C.
//!
//! Identities:
//! * NMI answers for the seed pod and the pod-identity pod (aad-pod-identity);
//! * Entra ID accepts a client assertion only when it is a service-account token issued by the
//!   cluster (`--sa-issuer`) for the audience `api://AzureADTokenExchange` and a federated subject
//!   of the client id (the workload identity's federated credential);
//! * [`DENIED_CLIENT_ID`] gets tokens but has no access policy on the vault (Key Vault answers
//!   403).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use serde_json::json;

use common::fake_azure::{FakeAzure, FakeResponse, Request};
use common::fake_identity::{ENTRA_HOST, FakeIdentity, Source};
use common::fake_keyvault::{Access, Body, FakeKeyVault, Kind, Version};
use common::nmi::NmiPort;

/// The seed's Key Vault.
const VAULT: &str = "myk8skv";
/// The seed's secret and its value.
const SECRET_NAME: &str = "ExamplePassword";
const SECRET_VALUE: &str = "hVFkk965BuUv";
const SECRET_VERSION: &str = "f4a1c3e2b5d64e7f8a9b0c1d2e3f4a5b";
/// Identity NMI answers with.
const NMI_CLIENT_ID: &str = "aks2kvIdentity-0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
/// Workload identity with an access policy on the vault.
const WI_CLIENT_ID: &str = "7a1b2c3d-0000-4000-8000-00000000a11e";
/// Workload identity federated like [`WI_CLIENT_ID`] but without any access policy.
const DENIED_CLIENT_ID: &str = "7a1b2c3d-0000-4000-8000-0000000de41e";
/// Audience of the service-account token exchanged for an Entra ID token.
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Host name of the control endpoint on the plain-HTTP fake (never routed anywhere else).
const ADMIN_HOST: &str = "cluster-standin.admin";

/// Azure stand-in for the cluster tests.
#[derive(Debug, Parser)]
#[command(name = "cluster_standin")]
struct Args {
    /// Issuer (`iss`) of the cluster's service-account tokens (kube-apiserver
    /// `--service-account-issuer`).
    #[arg(long)]
    sa_issuer: String,
    /// Federated subjects of the workload identities, `namespace:serviceaccount` (repeatable).
    #[arg(long = "federated-subject", required = true)]
    federated_subjects: Vec<String>,
    /// Pods NMI answers for, `namespace/name` (repeatable).
    #[arg(long = "nmi-pod", required = true)]
    nmi_pods: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cluster_standin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster_standin FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let fake = FakeAzure::start().await;
    // NMI where a node has it: 127.0.0.1:2579, reached directly (loopback is never proxied).
    let _nmi = NmiPort::claim(fake.http_addr).await;
    let identity = FakeIdentity::install(&fake);
    identity.grant_vault(VAULT, Access::All);
    for pod in &args.nmi_pods {
        let (ns, name) = pod
            .split_once('/')
            .ok_or_else(|| anyhow!("--nmi-pod {pod}: expected namespace/name"))?;
        identity.nmi_pod(ns, name, NMI_CLIENT_ID);
    }
    let kv = fake.keyvault.clone();
    kv.add_secret(
        VAULT,
        SECRET_NAME,
        SECRET_VERSION,
        SECRET_VALUE,
        1_700_000_000,
    );
    kv.add_secret(
        VAULT,
        "db-password",
        "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "s3cr3t-db-password",
        1_700_000_000,
    );
    add_recording(
        &kv,
        Kind::Secrets,
        "ingress-cert",
        "secret-cert-backed-pkcs12-rsa.json",
    )?;
    add_recording(&kv, Kind::Keys, "signing-key", "key-rsa.json")?;

    let subjects: Vec<String> = args
        .federated_subjects
        .iter()
        .map(|s| {
            s.split_once(':')
                .map(|(ns, sa)| format!("system:serviceaccount:{ns}:{sa}"))
                .ok_or_else(|| {
                    anyhow!("--federated-subject {s}: expected namespace:serviceaccount")
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let entra = Entra {
        keyvault: kv.clone(),
        issuer: args.sa_issuer,
        subjects,
    };
    fake.route_fn(ENTRA_HOST, move |r| entra.token(r));
    let admin_kv = kv.clone();
    fake.route_fn(ADMIN_HOST, move |r| admin(&admin_kv, r));

    println!("HTTPS_PROXY={}", fake.proxy_url());
    println!("CA_BUNDLE={}", fake.pki.ca_path().display());
    println!("ADMIN_ADDR={}", fake.http_addr);
    println!("ADMIN_HOST={ADMIN_HOST}");
    println!("READY");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    for r in fake.proxy.records() {
        eprintln!("proxy saw: {} {}", r.method, r.target);
    }
    for r in identity.requests(Source::Nmi) {
        eprintln!("nmi saw: {} {}{}", r.method, r.host_header, r.path);
    }
    Ok(())
}

/// Serves a recording from `shared/testdata/keyvault-responses/` byte for byte under the version
/// in its own `id`/`kid`.
fn add_recording(kv: &FakeKeyVault, kind: Kind, name: &str, file: &str) -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/keyvault-responses")
        .join(file);
    let body = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{} is not JSON", path.display()))?;
    let id = parsed["id"]
        .as_str()
        .or_else(|| parsed["key"]["kid"].as_str())
        .ok_or_else(|| anyhow!("{} has no id", path.display()))?;
    let version = id
        .rsplit('/')
        .next()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("{} has no versioned id", path.display()))?
        .to_owned();
    let created = parsed["attributes"]["created"].as_i64().unwrap_or(1);
    kv.add_version(
        VAULT,
        kind,
        name,
        Version {
            version,
            enabled: true,
            created,
            body: Body::Raw(body),
        },
    );
    Ok(())
}

/// `POST /secrets/<name>?version=<v>` with the value as body: adds a newer version of a secret
/// (what rotating a secret in Key Vault does).
fn admin(kv: &FakeKeyVault, r: &Request) -> FakeResponse {
    let Some(name) = r.path.strip_prefix("/secrets/") else {
        return FakeResponse::json(404, r#"{"error":"POST /secrets/<name>?version=<v>"}"#);
    };
    let (Some(version), Ok(value)) = (r.query_param("version"), std::str::from_utf8(&r.body))
    else {
        return FakeResponse::json(400, r#"{"error":"version query and UTF-8 body required"}"#);
    };
    if r.method != "POST" || name.is_empty() || version.is_empty() {
        return FakeResponse::json(400, r#"{"error":"POST /secrets/<name>?version=<v>"}"#);
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1_800_000_000, |d| {
            i64::try_from(d.as_secs()).unwrap_or(1_800_000_000)
        });
    kv.add_secret(VAULT, name, version, value, created);
    eprintln!("cluster_standin: {VAULT}/{name} has a new version {version}");
    FakeResponse::json(200, json!({"name": name, "version": version}).to_string())
}

/// Entra ID's token endpoint with federated credentials.
struct Entra {
    keyvault: FakeKeyVault,
    issuer: String,
    subjects: Vec<String>,
}

impl Entra {
    fn token(&self, r: &Request) -> FakeResponse {
        if r.method != "POST" || !r.path.ends_with("/oauth2/v2.0/token") {
            return FakeResponse::json(404, r#"{"error":"not_found"}"#);
        }
        let form: HashMap<String, String> = r.form().into_iter().collect();
        let client_id = form
            .get("client_id")
            .map(String::as_str)
            .unwrap_or_default();
        let access = match client_id {
            WI_CLIENT_ID => Access::All,
            DENIED_CLIENT_ID => Access::Only(Vec::new()),
            other => {
                return FakeResponse::json(
                    400,
                    json!({"error": "unauthorized_client", "error_description": format!("AADSTS700016: Application with identifier '{other}' was not found in the directory.")}).to_string(),
                );
            }
        };
        let Some(assertion) = form.get("client_assertion") else {
            return FakeResponse::json(
                400,
                r#"{"error":"invalid_request","error_description":"AADSTS900144: The request body must contain the following parameter: 'client_assertion'."}"#,
            );
        };
        if let Err(why) = self.check_assertion(assertion) {
            return FakeResponse::json(
                400,
                json!({"error": "invalid_client", "error_description": format!("AADSTS70021: No matching federated identity record found for presented assertion. {why}")}).to_string(),
            );
        }
        let token = format!(
            "eyJ0eXAiOiJKV1QifQ.fake-cluster-wi-{:016x}.c2ln",
            rand::random::<u64>()
        );
        self.keyvault.grant(VAULT, &token, access);
        FakeResponse::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}).to_string(),
        )
    }

    /// The assertion must be a service-account token of the cluster for the exchange audience
    /// and a federated subject. The signature is the API server's; the claims are what a
    /// federated credential matches on.
    fn check_assertion(&self, assertion: &str) -> Result<(), String> {
        let payload = assertion
            .split('.')
            .nth(1)
            .ok_or("the assertion is not a JWT")?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "the assertion's payload is not base64url")?;
        let claims: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| "the assertion's payload is not JSON")?;
        if claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Err(format!("Assertion issuer '{}'", claims["iss"]));
        }
        let aud_ok = match &claims["aud"] {
            serde_json::Value::String(a) => a == EXCHANGE_AUDIENCE,
            serde_json::Value::Array(list) => {
                list.iter().any(|a| a.as_str() == Some(EXCHANGE_AUDIENCE))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(format!("Assertion audience {}", claims["aud"]));
        }
        let sub = claims["sub"].as_str().unwrap_or_default();
        if !self.subjects.iter().any(|s| s == sub) {
            return Err(format!("Assertion subject '{sub}'"));
        }
        Ok(())
    }
}
