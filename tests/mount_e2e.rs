//! The shipped binary end to end: `rust-azure-provider` started as a child process with
//! `HTTPS_PROXY`/`HTTP_PROXY` pointing at the recording proxy and the fake CA as `--ca-bundle`,
//! called over its unix socket with requests built exactly as the driver builds them
//! (`spc::driver_attributes`), against fake Entra ID / IMDS / NMI / Key Vault. Every provider runs
//! with trace logging, and every test ends by checking that no secret the fakes handed out (or
//! received) appears in the provider's output.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code fails the test on setup errors"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::fake_azure::FakeAzure;
use common::fake_identity::{FakeIdentity, Source};
use common::fake_keyvault::{Access, Kind, testdata, throttled};
use common::nmi::NmiPort;
use common::provider_process::{ProviderProcess, http_get};
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use rust_azure_provider::grpc::proto::v1alpha1::{MountRequest, MountResponse};
use rust_azure_provider::spc::{self, Metadata, PodInfo, SecretProviderClass, Spec};
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_rust-azure-provider");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const LOG_FILTER: &str = "rust_azure_provider=trace,debug";
const SEED_SPC: &str = include_str!("../deploy/examples/seed-secretproviderclass.yaml");
const WI_AUDIENCE: &str = "api://AzureADTokenExchange";

type Client = CsiDriverProviderClient<Channel>;

/// One fake Azure, its identity endpoints and one provider binary.
struct Env {
    fake: FakeAzure,
    id: FakeIdentity,
    provider: ProviderProcess,
    client: Client,
    /// Values that must never appear in logs or error messages (besides what the fakes track).
    sensitive: Vec<String>,
    /// The fake NMI on 127.0.0.1:2579, for tests that use pod identity.
    _nmi: Option<NmiPort>,
    /// Contents of every file any Mount returned (rendered keys, PKCS#12, decoded values).
    rendered: Vec<Vec<u8>>,
}

impl Env {
    async fn start(extra_args: &[&str]) -> Self {
        Self::start_inner(&[], extra_args, false).await
    }

    /// [`Env::start`] plus the fake NMI on its real port (serialised with other such tests).
    async fn start_with_nmi(extra_args: &[&str]) -> Self {
        Self::start_inner(&[], extra_args, true).await
    }

    /// As [`Env::start_with_nmi`], with extra host names in the fakes' certificate.
    async fn start_with_hosts(hosts: &[&str], extra_args: &[&str]) -> Self {
        Self::start_inner(hosts, extra_args, true).await
    }

    async fn start_inner(hosts: &[&str], extra_args: &[&str], nmi: bool) -> Self {
        let fake = FakeAzure::start_with_hosts(hosts).await;
        let nmi = if nmi {
            Some(NmiPort::claim(fake.http_addr).await)
        } else {
            None
        };
        let id = FakeIdentity::install(&fake);
        let mut args = vec!["--log-filter", LOG_FILTER];
        args.extend_from_slice(extra_args);
        let provider =
            ProviderProcess::start(Path::new(BIN), &fake.proxy_url(), fake.pki.ca_path(), &args)
                .await
                .expect("provider starts");
        let client = provider.client().await.expect("client connects");
        Self {
            fake,
            id,
            provider,
            client,
            sensitive: vec![],
            _nmi: nmi,
            rendered: vec![],
        }
    }

    /// Adds a secret version and remembers its value as sensitive.
    fn secret(&mut self, vault: &str, name: &str, version: &str, value: &str, created: i64) {
        self.fake
            .keyvault
            .add_secret(vault, name, version, value, created);
        self.sensitive.push(value.to_owned());
    }

    async fn mount(
        &mut self,
        spc: &SecretProviderClass,
        pod: &PodInfo,
        tokens: Option<&str>,
        secrets: &str,
    ) -> Result<MountResponse, tonic::Status> {
        let result = mount(&mut self.client, spc, pod, tokens, secrets, "420").await;
        if let Ok(resp) = &result {
            self.rendered
                .extend(resp.files.iter().map(|f| f.contents.clone()));
        }
        result
    }

    /// Stops the provider, checks its whole output (trace level) for secrets (credentials, every
    /// stored value and every rendered file) and returns it. `E2E_DUMP_LOGS=1` prints it.
    fn finish(self) -> String {
        let mut sensitive = self.sensitive.clone();
        sensitive.extend(self.id.sensitive_strings());
        sensitive.extend(self.fake.keyvault.stored_values());
        for content in &self.rendered {
            sensitive.extend(common::log_capture::material(content));
        }
        let logs = self.provider.stop();
        assert!(
            logs.contains("TRACE") || logs.contains("DEBUG"),
            "the provider did not log at debug/trace level; the hygiene check would be vacuous:\n{logs}"
        );
        assert_clean(&logs, &sensitive, "provider output");
        if std::env::var_os("E2E_DUMP_LOGS").is_some() {
            eprintln!("{logs}");
        }
        logs
    }
}

fn assert_clean(text: &str, sensitive: &[String], what: &str) {
    for s in sensitive.iter().filter(|s| s.len() >= 6) {
        assert!(
            !text.contains(s.as_str()),
            "{what} contains a secret ({} chars starting {:?})",
            s.len(),
            &s[..3]
        );
    }
}

async fn mount(
    client: &mut Client,
    spc: &SecretProviderClass,
    pod: &PodInfo,
    tokens: Option<&str>,
    secrets: &str,
    permission: &str,
) -> Result<MountResponse, tonic::Status> {
    let attributes = spc::driver_attributes(spc, pod, tokens);
    let request = MountRequest {
        attributes: serde_json::to_string(&attributes).unwrap(),
        secrets: secrets.to_owned(),
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets-store-inline/mount",
            pod.uid
        ),
        permission: permission.to_owned(),
        current_object_version: vec![],
    };
    client.mount(request).await.map(tonic::Response::into_inner)
}

fn pod(name: &str) -> PodInfo {
    PodInfo {
        name: name.into(),
        namespace: "default".into(),
        uid: "6d5f1c2e-0000-4000-8000-00000000beef".into(),
        service_account: "default".into(),
    }
}

fn make_spc(params: &[(&str, &str)]) -> SecretProviderClass {
    SecretProviderClass {
        api_version: spc::API_VERSIONS[0].into(),
        kind: "SecretProviderClass".into(),
        metadata: Metadata {
            name: "spc-e2e".into(),
            namespace: Some("default".into()),
        },
        spec: Spec {
            provider: "rust-azure".into(),
            parameters: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            secret_objects: vec![],
        },
    }
}

/// The `objects` parameter: one `- |` block per entry (entries are `key: value` lines).
fn objects(entries: &[&str]) -> String {
    let mut out = String::from("array:\n");
    for e in entries {
        out.push_str("  - |\n");
        for line in e.lines() {
            out.push_str("    ");
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}

fn tokens_json(sa_token: &str) -> String {
    serde_json::json!({WI_AUDIENCE: {"token": sa_token, "expirationTimestamp": "2099-01-01T00:00:00Z"}})
        .to_string()
}

fn files(resp: &MountResponse) -> Vec<(String, i32, Vec<u8>)> {
    resp.files
        .iter()
        .map(|f| (f.path.clone(), f.mode, f.contents.clone()))
        .collect()
}

fn versions(resp: &MountResponse) -> Vec<(String, String)> {
    resp.object_version
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect()
}

fn file(path: &str, mode: i32, contents: &[u8]) -> (String, i32, Vec<u8>) {
    (path.to_owned(), mode, contents.to_vec())
}

fn pair(id: &str, version: &str) -> (String, String) {
    (id.to_owned(), version.to_owned())
}

fn expect_err(
    result: Result<MountResponse, tonic::Status>,
    code: Code,
    fragments: &[&str],
) -> String {
    let status = match result {
        Ok(r) => panic!(
            "expected {code:?}, got files {:?}",
            files(&r).iter().map(|f| &f.0).collect::<Vec<_>>()
        ),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{}", status.message());
    for f in fragments {
        assert!(
            status.message().contains(f),
            "message lacks {f:?}: {}",
            status.message()
        );
    }
    status.message().to_owned()
}

/// Last path segment of a recorded body's `id` (or `key.kid`): the version Key Vault reports.
fn testdata_version(file: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(&testdata(file)).unwrap();
    let id = v["id"]
        .as_str()
        .or_else(|| v["key"]["kid"].as_str())
        .unwrap();
    id.rsplit('/').next().unwrap().to_owned()
}

fn pem_blocks(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("-----BEGIN "))
        .map(|l| l.trim_end_matches("-----").to_owned())
        .collect()
}

// ---- 1 + 7: the seed scenario, health and metrics ----

#[tokio::test]
async fn seed_scenario_v1_and_v1alpha1_with_secret_sync_health_and_metrics() {
    let mut env = Env::start_with_nmi(&[]).await;
    env.id.grant_vault("myk8skv", Access::All);
    env.id.nmi_pod(
        "default",
        "inject-secrets-from-akv",
        "aks2kvIdentity-client-id",
    );
    let version = "4387e9f3d6e14c459867679a90fd0f79";
    env.secret(
        "myk8skv",
        "ExamplePassword",
        version,
        "hVFkk965BuUv",
        1_700_000_000,
    );

    let v1 = spc::parse_documents(SEED_SPC).unwrap().remove(0);
    assert_eq!(v1.api_version, "secrets-store.csi.x-k8s.io/v1");
    let v1alpha1 = spc::parse_documents(&SEED_SPC.replace(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\n",
        "apiVersion: secrets-store.csi.x-k8s.io/v1alpha1\n",
    ))
    .unwrap()
    .remove(0);
    assert_eq!(v1alpha1.api_version, "secrets-store.csi.x-k8s.io/v1alpha1");
    let the_pod = pod("inject-secrets-from-akv");

    for spc in [&v1, &v1alpha1] {
        let resp = env.mount(spc, &the_pod, None, "null").await.unwrap();
        assert_eq!(
            files(&resp),
            vec![file("ExamplePassword", 0o644, b"hVFkk965BuUv")]
        );
        assert_eq!(resp.files[0].mode, 420);
        assert_eq!(
            versions(&resp),
            vec![pair("secret/ExamplePassword", version)]
        );
        assert!(resp.error.is_none());

        // The Secret the driver's sync controller builds from secretObjects, from the files as
        // the driver writes them.
        let dir = tempfile::tempdir().unwrap();
        let payload: Vec<_> = resp
            .files
            .iter()
            .map(|f| rust_azure_provider::writer::PayloadFile {
                path: &f.path,
                mode: u32::try_from(f.mode).unwrap(),
                contents: &f.contents,
            })
            .collect();
        rust_azure_provider::writer::write_atomically(dir.path(), &payload).unwrap();
        let so = &spc.spec.secret_objects[0];
        assert_eq!(so.secret_name, "test-secret");
        let data: BTreeMap<String, String> = so
            .data
            .iter()
            .map(|d| {
                let bytes = std::fs::read(dir.path().join(&d.object_name)).unwrap();
                (d.key.clone(), B64.encode(bytes))
            })
            .collect();
        assert_eq!(
            data,
            BTreeMap::from([("key".to_owned(), "aFZGa2s5NjVCdVV2".to_owned())])
        );
        let meta = std::fs::metadata(dir.path().join("ExamplePassword")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o644
        );
    }

    // Pod identity: NMI directly on 127.0.0.1:2579, once, although HTTP_PROXY is set and
    // NO_PROXY is not (loopback is never proxied); Key Vault through CONNECT.
    let nmi = env.id.requests(Source::Nmi);
    assert_eq!(nmi.len(), 1, "the second Mount uses the cached token");
    assert_eq!(nmi[0].method, "GET");
    assert_eq!(nmi[0].host_header, "localhost:2579");
    assert_eq!(nmi[0].path, "/host/token/");
    assert_eq!(
        nmi[0].query.as_deref(),
        Some("resource=https://vault.azure.net")
    );
    assert_eq!(nmi[0].header("podns"), Some("default"));
    assert_eq!(nmi[0].header("podname"), Some("inject-secrets-from-akv"));
    let records = env.fake.proxy.records();
    assert!(
        !records
            .iter()
            .any(|r| r.host == "localhost" || r.host == "127.0.0.1"),
        "loopback went through the proxy: {records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.method == "CONNECT" && r.target == "myk8skv.vault.azure.net:443"),
        "{records:?}"
    );
    assert_eq!(env.id.count(Source::Entra), 0);
    let kv = env.fake.requests_to("myk8skv.vault.azure.net");
    assert_eq!(kv.len(), 2);
    assert!(
        kv.iter()
            .all(|r| r.tls && r.path == "/secrets/ExamplePassword/")
    );

    // Health and metrics on the bound (port 0) addresses from the start-up log line.
    let (status, body) = http_get(env.provider.health_addr, "/healthz")
        .await
        .unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = http_get(env.provider.health_addr, "/readyz").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, metrics) = http_get(env.provider.metrics_addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let grpc_bucket = metrics
        .lines()
        .find(|l| {
            l.starts_with("grpc_request_bucket{")
                && l.contains("grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\"")
        })
        .unwrap_or_else(|| panic!("no Mount grpc_request_bucket in:\n{metrics}"));
    assert!(grpc_bucket.contains("le="), "{grpc_bucket}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keyvault_request_bucket{")),
        "{metrics}"
    );
    // The millisecond histograms beside the reference's, and which build this is.
    for prefix in [
        "rust_azure_provider_grpc_request_duration_seconds_bucket{le=\"0.0005\",grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\"",
        "rust_azure_provider_keyvault_request_duration_seconds_bucket{le=\"0.0005\",object_type=\"secret\"",
        concat!(
            "rust_azure_provider_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\",commit=\""
        ),
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(prefix)),
            "no {prefix} in:\n{metrics}"
        );
    }
    let (status, _) = http_get(env.provider.health_addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(
        status, 404,
        "/metrics is served on the metrics listener only"
    );

    let logs = env.finish();
    // The output checked is the real one: start-up, the Mount span with the pod, outbound calls.
    assert!(logs.contains("health_addr="), "{logs}");
    assert!(logs.contains("inject-secrets-from-akv"), "{logs}");
    assert!(logs.contains("mount succeeded"), "{logs}");
}

// ---- 2: identity modes ----

#[tokio::test]
async fn every_identity_mode_over_the_wire_with_token_caching() {
    let mut env = Env::start_with_nmi(&[]).await;
    env.id.grant_vault("idkv", Access::All);
    env.secret("idkv", "app-secret", "v1", "id-modes-value-7731", 100);
    let objs = objects(&["objectName: app-secret\nobjectType: secret"]);
    let expect = vec![file("app-secret", 0o644, b"id-modes-value-7731")];
    let objs_ref: &str = &objs;
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = vec![("keyvaultName", "idkv"), ("tenantId", TENANT)];
        p.extend_from_slice(extra);
        p
    };

    // Service principal: nodePublishSecretRef keys in `secrets`.
    env.id
        .allow_client_secret("sp-app-id", "sp-Client.Secret~9f2");
    env.sensitive.push("sp-Client.Secret~9f2".into());
    let mut params = base(&[]);
    params.push(("objects", objs_ref));
    let sp = make_spc(&params);
    let secrets = r#"{"clientid":"sp-app-id","clientsecret":"sp-Client.Secret~9f2"}"#;
    for _ in 0..2 {
        let resp = env.mount(&sp, &pod("sp-pod"), None, secrets).await.unwrap();
        assert_eq!(files(&resp), expect);
        assert_eq!(versions(&resp), vec![pair("secret/app-secret", "v1")]);
    }
    let entra = env.id.requests(Source::Entra);
    assert_eq!(entra.len(), 1, "warm Mount makes no token request");
    assert!(entra[0].tls);
    assert_eq!(entra[0].path, format!("/{TENANT}/oauth2/v2.0/token"));
    let form: BTreeMap<String, String> = entra[0].form().into_iter().collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "sp-app-id");
    assert_eq!(form["client_secret"], "sp-Client.Secret~9f2");
    assert_eq!(form["scope"], "https://vault.azure.net/.default");

    // Workload identity: tokens attribute; one token request per distinct SA token.
    let mut params = base(&[("clientID", "wi-app-id")]);
    params.push(("objects", objs_ref));
    let wi = make_spc(&params);
    env.id.allow_assertion("wi-app-id", "sa-jwt-pod-a.e30.sig");
    env.id.allow_assertion("wi-app-id", "sa-jwt-pod-b.e30.sig");
    let before = env.id.count(Source::Entra);
    for sa in [
        "sa-jwt-pod-a.e30.sig",
        "sa-jwt-pod-a.e30.sig",
        "sa-jwt-pod-b.e30.sig",
        "sa-jwt-pod-b.e30.sig",
    ] {
        env.sensitive.push(sa.into());
        let resp = env
            .mount(&wi, &pod("wi-pod"), Some(&tokens_json(sa)), "null")
            .await
            .unwrap();
        assert_eq!(files(&resp), expect);
    }
    let entra = env.id.requests(Source::Entra);
    assert_eq!(entra.len() - before, 2, "two SA tokens, two token requests");
    let assertions: Vec<String> = entra[before..]
        .iter()
        .map(|r| {
            let form: BTreeMap<String, String> = r.form().into_iter().collect();
            assert_eq!(form["client_id"], "wi-app-id");
            assert_eq!(
                form["client_assertion_type"],
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            );
            assert!(!form.contains_key("client_secret"));
            form["client_assertion"].clone()
        })
        .collect();
    assert_eq!(assertions, ["sa-jwt-pod-a.e30.sig", "sa-jwt-pod-b.e30.sig"]);

    // VM managed identity: system-assigned, user-assigned by client id and by resource id.
    let resource_id = "/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
    for uai in ["", "11111111-2222-3333-4444-555555555555", resource_id] {
        let mut params = base(&[("useVMManagedIdentity", "true")]);
        params.push(("userAssignedIdentityID", uai));
        params.push(("objects", objs_ref));
        let vm = make_spc(&params);
        for _ in 0..2 {
            let resp = env.mount(&vm, &pod("vm-pod"), None, "null").await.unwrap();
            assert_eq!(files(&resp), expect);
        }
    }
    let imds = env.id.requests(Source::Imds);
    assert_eq!(
        imds.len(),
        3,
        "one token request per identity, warm Mounts none"
    );
    for r in &imds {
        assert!(!r.tls);
        assert_eq!(r.path, "/metadata/identity/oauth2/token");
        assert_eq!(r.header("metadata"), Some("true"));
    }
    assert_eq!(imds[0].query_param("client_id"), None);
    assert_eq!(imds[0].query_param("msi_res_id"), None);
    assert_eq!(
        imds[1].query_param("client_id"),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert!(imds[2].query_param("msi_res_id").is_some());

    // Pod identity.
    env.id.nmi_pod("default", "nmi-pod", "nmi-client");
    let mut params = base(&[("usePodIdentity", "true")]);
    params.push(("objects", objs_ref));
    let pi = make_spc(&params);
    for _ in 0..2 {
        let resp = env.mount(&pi, &pod("nmi-pod"), None, "null").await.unwrap();
        assert_eq!(files(&resp), expect);
    }
    let nmi = env.id.requests(Source::Nmi);
    assert_eq!(nmi.len(), 1);
    assert_eq!(nmi[0].header("podname"), Some("nmi-pod"));
    assert_eq!(nmi[0].header("podns"), Some("default"));

    // Every Key Vault request went through the proxy with CONNECT, IMDS in absolute form, NMI
    // (loopback) never.
    let records = env.fake.proxy.records();
    assert!(
        !records.iter().any(|r| r.host == "localhost"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.method == "CONNECT" && r.target == "login.microsoftonline.com:443")
    );
    assert!(records.iter().any(|r| {
        r.target
            .starts_with("http://169.254.169.254/metadata/identity/oauth2/token?")
    }));
    env.finish();
}

// ---- sovereign and custom clouds ----

/// An identity mode: label, the SPC parameter selecting it, the `secrets` field, its token service.
type ModeCase<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a str, Source);

/// One cloud as the provider must address it.
struct CloudCase {
    cloud_name: &'static str,
    entra_host: &'static str,
    resource: &'static str,
    vault_suffix: &'static str,
}

const STACK: CloudCase = CloudCase {
    cloud_name: "AzureStackCloud",
    entra_host: "login.stack.test",
    resource: "https://vault.stack.test",
    vault_suffix: "vault.stack.test",
};

/// Every identity mode that names a resource, against the US Government and China clouds and a
/// custom Azure Stack cloud file: Entra ID of that cloud with scope `<vault resource>/.default`,
/// IMDS and NMI asked for that cloud's resource, the vault on that cloud's suffix. The fakes issue
/// a token for the requested resource only and each cloud's Key Vault refuses any other, so a
/// Mount path that kept the public cloud's authority or resource anywhere fails here.
#[tokio::test]
async fn sovereign_and_custom_clouds_end_to_end() {
    let mut env = Env::start_with_hosts(&[STACK.entra_host, "*.vault.stack.test"], &[]).await;
    env.id.add_cloud(
        &env.fake,
        STACK.entra_host,
        STACK.resource,
        STACK.vault_suffix,
    );
    let cloud_file = env.provider.dir.path().join("stack-cloud.json");
    std::fs::write(
        &cloud_file,
        serde_json::json!({
            "name": "LocalStack",
            "activeDirectoryEndpoint": format!("https://{}/", STACK.entra_host),
            "keyVaultEndpoint": format!("{}/", STACK.resource),
            "keyVaultDNSSuffix": STACK.vault_suffix,
        })
        .to_string(),
    )
    .unwrap();
    let cloud_file = cloud_file.to_str().unwrap().to_owned();
    env.id.grant_vault("sovkv", Access::All);
    env.secret("sovkv", "sov-secret", "v1", "sovereign-value-4410", 1);
    env.id.allow_client_secret("sov-app", "sov-app-secret-63");
    env.id.nmi_pod("default", "sov-pod", "sov-identity");
    let objs = objects(&["objectName: sov-secret\nobjectType: secret"]);
    let expect = vec![file("sov-secret", 0o644, b"sovereign-value-4410")];
    let sp_secrets = r#"{"clientid":"sov-app","clientsecret":"sov-app-secret-63"}"#;

    let clouds = [
        CloudCase {
            cloud_name: "AzureUSGovernmentCloud",
            entra_host: "login.microsoftonline.us",
            resource: "https://vault.usgovcloudapi.net",
            vault_suffix: "vault.usgovcloudapi.net",
        },
        CloudCase {
            cloud_name: "AzureChinaCloud",
            entra_host: "login.chinacloudapi.cn",
            resource: "https://vault.azure.cn",
            vault_suffix: "vault.azure.cn",
        },
        STACK,
    ];
    for cloud in &clouds {
        let mut params = vec![
            ("keyvaultName", "sovkv"),
            ("tenantId", TENANT),
            ("cloudName", cloud.cloud_name),
            ("objects", objs.as_str()),
        ];
        if cloud.cloud_name == STACK.cloud_name {
            params.push(("cloudEnvFileName", cloud_file.as_str()));
        }
        let modes: [ModeCase<'_>; 3] = [
            ("service principal", None, sp_secrets, Source::Entra),
            (
                "VM managed identity",
                Some(("useVMManagedIdentity", "true")),
                "null",
                Source::Imds,
            ),
            (
                "pod identity",
                Some(("usePodIdentity", "true")),
                "null",
                Source::Nmi,
            ),
        ];
        for (mode, extra, secrets, source) in modes {
            let what = format!("{} / {mode}", cloud.cloud_name);
            let mut p = params.clone();
            p.extend(extra);
            let before = env.id.count(source);
            env.fake.clear_log();
            let resp = env
                .mount(&make_spc(&p), &pod("sov-pod"), None, secrets)
                .await
                .unwrap_or_else(|s| panic!("{what}: {:?} {}", s.code(), s.message()));
            assert_eq!(files(&resp), expect, "{what}");
            let requests = env.id.requests(source);
            assert_eq!(requests.len(), before + 1, "{what}: one token request");
            let r = &requests[before];
            match source {
                Source::Entra => {
                    assert_eq!(r.host, cloud.entra_host, "{what}");
                    assert!(r.tls, "{what}");
                    assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"), "{what}");
                    let form: BTreeMap<String, String> = r.form().into_iter().collect();
                    assert_eq!(
                        form["scope"],
                        format!("{}/.default", cloud.resource),
                        "{what}"
                    );
                }
                Source::Imds | Source::Nmi => {
                    let resource = percent_encoding::percent_decode_str(
                        r.query_param("resource").unwrap_or_default(),
                    )
                    .decode_utf8_lossy()
                    .into_owned();
                    assert_eq!(resource, cloud.resource, "{what}");
                }
            }
            let issued = env.id.issued();
            assert_eq!(
                issued.last().map(|i| i.resource.as_str()),
                Some(cloud.resource),
                "{what}"
            );
            let vault_host = format!("sovkv.{}", cloud.vault_suffix);
            let kv = env.fake.requests_to(&vault_host);
            assert!(!kv.is_empty(), "{what}: no request to {vault_host}");
            assert!(
                env.fake
                    .requests()
                    .iter()
                    .all(|r| !r.host.ends_with(".vault.azure.net")
                        && r.host != "login.microsoftonline.com"),
                "{what}: the public cloud was contacted"
            );
        }
    }

    // The fakes refuse what they do not know, as Entra ID does: an unknown tenant.
    expect_err(
        env.mount(
            &make_spc(&[
                ("keyvaultName", "sovkv"),
                ("tenantId", "00000000-0000-0000-0000-0000000000aa"),
                ("cloudName", "AzureUSGovernmentCloud"),
                ("objects", objs.as_str()),
            ]),
            &pod("sov-pod"),
            None,
            sp_secrets,
        )
        .await,
        Code::Unauthenticated,
        &["AADSTS90002"],
    );
    env.finish();
}

/// Workload identity: one service-account token presented with clientID A and then B is two
/// Entra ID requests (one per client id) and two tokens; B's Mount never reuses A's token.
#[tokio::test]
async fn one_service_account_token_with_two_client_ids_is_two_tokens() {
    let mut env = Env::start(&[]).await;
    env.id.grant_vault("twokv", Access::All);
    env.secret("twokv", "s", "v1", "two-clients-value-81", 1);
    let sa = "sa-jwt-shared-pod.e30.sig";
    env.sensitive.push(sa.into());
    env.id.allow_assertion("client-a", sa);
    env.id.allow_assertion("client-b", sa);
    let objs = objects(&["objectName: s\nobjectType: secret"]);
    let spc_for = |client: &str| {
        make_spc(&[
            ("keyvaultName", "twokv"),
            ("tenantId", TENANT),
            ("clientID", client),
            ("objects", objs.as_str()),
        ])
    };
    for client in ["client-a", "client-b", "client-a", "client-b"] {
        let resp = env
            .mount(
                &spc_for(client),
                &pod("wi-pod"),
                Some(&tokens_json(sa)),
                "null",
            )
            .await
            .unwrap();
        assert_eq!(
            files(&resp),
            vec![file("s", 0o644, b"two-clients-value-81")]
        );
    }
    let entra = env.id.requests(Source::Entra);
    let clients: Vec<String> = entra
        .iter()
        .map(|r| {
            let form: BTreeMap<String, String> = r.form().into_iter().collect();
            form["client_id"].clone()
        })
        .collect();
    assert_eq!(
        clients,
        ["client-a", "client-b"],
        "one token request per client id"
    );
    let issued = env.id.issued();
    assert_eq!(issued.len(), 2);
    assert_ne!(issued[0].access_token, issued[1].access_token);
    env.finish();
}

// ---- 3: objects ----

#[tokio::test]
async fn keys_certs_pkcs12_aliases_modes_encodings_history_and_pins() {
    let mut env = Env::start(&[]).await;
    env.id.grant_vault("objkv", Access::All);
    env.id.allow_client_secret("obj-app", "obj-app-secret-55");
    let kv = &env.fake.keyvault;
    kv.add_testdata("objkv", Kind::Keys, "rsa-key", "x", 1, "key-rsa.json");
    kv.add_testdata("objkv", Kind::Keys, "ec-key", "x", 1, "key-ec-p256.json");
    kv.add_testdata(
        "objkv",
        Kind::Certificates,
        "web-cert",
        "x",
        1,
        "certificate-rsa.json",
    );
    kv.add_testdata(
        "objkv",
        Kind::Secrets,
        "web-pfx",
        "x",
        1,
        "secret-cert-backed-pkcs12-rsa.json",
    );
    let pfx: serde_json::Value =
        serde_json::from_slice(&testdata("secret-cert-backed-pkcs12-rsa.json")).unwrap();
    let pfx_value = pfx["value"].as_str().unwrap().to_owned();
    env.sensitive.push(pfx_value[200..260].to_owned());
    env.secret("objkv", "nested-src", "n1", "nested-value-4411", 1);
    env.secret("objkv", "private", "p1", "private-value-0600", 1);
    let raw = [0u8, 1, 2, 0xfe, 0xff, b'z'];
    env.secret("objkv", "encoded", "e1", &B64.encode(raw), 1);
    env.secret("objkv", "rotating", "r1-oldest", "rotating-value-1", 100);
    env.secret("objkv", "rotating", "r2-middle", "rotating-value-2", 200);
    env.secret("objkv", "rotating", "r3-newest", "rotating-value-3", 300);
    env.secret("objkv", "pinned", "pin-a", "pinned-value-a", 100);
    env.secret("objkv", "pinned", "pin-b", "pinned-value-b", 200);

    let objs = objects(&[
        "objectName: rsa-key\nobjectType: key",
        "objectName: ec-key\nobjectType: key",
        "objectName: web-cert\nobjectType: cert",
        "objectName: web-pfx\nobjectType: secret",
        "objectName: nested-src\nobjectType: secret\nobjectAlias: dir/sub/nested.txt",
        "objectName: private\nobjectType: secret\nfilePermission: \"0600\"",
        "objectName: encoded\nobjectType: secret\nobjectEncoding: base64",
        "objectName: rotating\nobjectType: secret\nobjectAlias: rot\nobjectVersionHistory: 2",
        "objectName: pinned\nobjectType: secret\nobjectVersion: pin-a",
    ]);
    let spc = make_spc(&[
        ("keyvaultName", "objkv"),
        ("tenantId", TENANT),
        ("objects", &objs),
    ]);
    let secrets = r#"{"clientid":"obj-app","clientsecret":"obj-app-secret-55"}"#;
    let resp = env
        .mount(&spc, &pod("obj-pod"), None, secrets)
        .await
        .unwrap();

    let paths: Vec<&str> = resp.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rsa-key",
            "ec-key",
            "web-cert",
            "web-pfx",
            "dir/sub/nested.txt",
            "private",
            "encoded",
            "rot/0",
            "rot/1",
            "pinned"
        ]
    );
    assert_eq!(
        versions(&resp),
        vec![
            pair("key/rsa-key", &testdata_version("key-rsa.json")),
            pair("key/ec-key", &testdata_version("key-ec-p256.json")),
            pair("cert/web-cert", &testdata_version("certificate-rsa.json")),
            pair(
                "secret/web-pfx",
                &testdata_version("secret-cert-backed-pkcs12-rsa.json")
            ),
            pair("secret/nested-src", "n1"),
            pair("secret/private", "p1"),
            pair("secret/encoded", "e1"),
            pair("secret/rotating/0", "r3-newest"),
            pair("secret/rotating/1", "r2-middle"),
            pair("secret/pinned", "pin-a"),
        ]
    );
    let by_path: BTreeMap<&str, (i32, &[u8])> = resp
        .files
        .iter()
        .map(|f| (f.path.as_str(), (f.mode, f.contents.as_slice())))
        .collect();
    let text = |p: &str| String::from_utf8(by_path[p].1.to_vec()).unwrap();

    // Keys: PEM SubjectPublicKeyInfo matching the JWK.
    for (path, file) in [("rsa-key", "key-rsa.json"), ("ec-key", "key-ec-p256.json")] {
        let pem = text(path);
        assert_eq!(pem_blocks(&pem), ["PUBLIC KEY"], "{path}");
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, spki) =
            <x509_parser::x509::SubjectPublicKeyInfo<'_> as x509_parser::prelude::FromDer<
                x509_parser::error::X509Error,
            >>::from_der(&block.contents)
            .unwrap();
        let jwk: serde_json::Value = serde_json::from_slice(&testdata(file)).unwrap();
        let b64url = |f: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk["key"][f].as_str().unwrap().trim_end_matches('='))
                .unwrap()
        };
        match spki.parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                let n = b64url("n");
                let strip = |b: &[u8]| {
                    b.iter()
                        .skip_while(|x| **x == 0)
                        .copied()
                        .collect::<Vec<_>>()
                };
                assert_eq!(strip(rsa.modulus), strip(&n));
            }
            x509_parser::public_key::PublicKey::EC(point) => {
                let mut expected = vec![4u8];
                expected.extend(b64url("x"));
                expected.extend(b64url("y"));
                assert_eq!(point.data(), expected.as_slice());
            }
            other => panic!("unexpected key type {other:?}"),
        }
    }
    // Certificate: PEM of exactly the `cer` DER.
    let cert_pem = text("web-cert");
    assert_eq!(pem_blocks(&cert_pem), ["CERTIFICATE"]);
    let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
    let cer: serde_json::Value = serde_json::from_slice(&testdata("certificate-rsa.json")).unwrap();
    assert_eq!(
        block.contents,
        B64.decode(cer["cer"].as_str().unwrap()).unwrap()
    );
    // Certificate-backed PKCS#12 secret: private key first, then the chain.
    let blocks = pem_blocks(&text("web-pfx"));
    assert!(blocks.len() >= 2, "{blocks:?}");
    assert!(blocks[0].ends_with("PRIVATE KEY"), "{blocks:?}");
    assert!(blocks[1..].iter().all(|b| b == "CERTIFICATE"), "{blocks:?}");

    assert_eq!(
        by_path["dir/sub/nested.txt"],
        (0o644, b"nested-value-4411".as_slice())
    );
    assert_eq!(by_path["private"], (384, b"private-value-0600".as_slice()));
    assert_eq!(by_path["encoded"], (0o644, raw.as_slice()));
    assert_eq!(by_path["rot/0"].1, b"rotating-value-3");
    assert_eq!(by_path["rot/1"].1, b"rotating-value-2");
    assert_eq!(by_path["pinned"].1, b"pinned-value-a");
    let reqs = env.fake.requests_to("objkv.vault.azure.net");
    assert!(reqs.iter().any(|r| r.path == "/secrets/pinned/pin-a"));
    assert!(reqs.iter().any(|r| r.path == "/secrets/rotating/versions"));
    env.finish();
}

// ---- 3 (split files) + 4 (response limit) on a separately configured binary ----

#[tokio::test]
async fn separate_cert_and_key_files_and_response_size_limit() {
    let mut env = Env::start(&[
        "--write-cert-and-key-in-separate-files=true",
        "--max-response-bytes",
        "65536",
    ])
    .await;
    env.id.grant_vault("splitkv", Access::All);
    env.id
        .allow_client_secret("split-app", "split-app-secret-77");
    env.fake.keyvault.add_testdata(
        "splitkv",
        Kind::Secrets,
        "web-pfx",
        "x",
        1,
        "secret-cert-backed-pkcs12-rsa.json",
    );
    env.secret("splitkv", "plain", "p1", "plain-value-8812", 1);
    let big_a = "A".repeat(40_000);
    let big_b = "B".repeat(30_000);
    env.secret("splitkv", "big-a", "b1", &big_a, 1);
    env.secret("splitkv", "big-b", "b2", &big_b, 1);
    let secrets = r#"{"clientid":"split-app","clientsecret":"split-app-secret-77"}"#;
    let spc_for = |objs: &str| {
        make_spc(&[
            ("keyvaultName", "splitkv"),
            ("tenantId", TENANT),
            ("objects", objs),
        ])
    };
    let good = spc_for(&objects(&[
        "objectName: web-pfx\nobjectType: secret",
        "objectName: plain\nobjectType: secret",
    ]));
    let resp = env
        .mount(&good, &pod("split-pod"), None, secrets)
        .await
        .unwrap();
    let paths: Vec<&str> = resp.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["web-pfx.crt", "web-pfx.key", "web-pfx", "plain"]);
    let pfx_version = testdata_version("secret-cert-backed-pkcs12-rsa.json");
    assert_eq!(
        versions(&resp),
        vec![
            pair("secret/web-pfx", &pfx_version),
            pair("secret/web-pfx", &pfx_version),
            pair("secret/web-pfx", &pfx_version),
            pair("secret/plain", "p1"),
        ]
    );
    let text = |i: usize| String::from_utf8(resp.files[i].contents.clone()).unwrap();
    let crt = pem_blocks(&text(0));
    assert!(
        !crt.is_empty() && crt.iter().all(|b| b == "CERTIFICATE"),
        "{crt:?}"
    );
    let key = pem_blocks(&text(1));
    assert_eq!(key.len(), 1);
    assert!(key[0].ends_with("PRIVATE KEY"), "{key:?}");
    assert!(text(2).starts_with(&format!("-----BEGIN {}-----", key[0])));

    let too_big = spc_for(&objects(&[
        "objectName: plain\nobjectType: secret",
        "objectName: big-a\nobjectType: secret",
        "objectName: big-b\nobjectType: secret",
    ]));
    let started = Instant::now();
    let msg = expect_err(
        env.mount(&too_big, &pod("split-pod"), None, secrets).await,
        Code::ResourceExhausted,
        &[
            "above the limit of 65536 bytes",
            "big-a (40000 bytes)",
            "big-b (30000 bytes)",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        msg.find("big-a").unwrap() < msg.find("big-b").unwrap(),
        "{msg}"
    );
    assert_clean(&msg, &env.sensitive, "error message");
    // The next good Mount still succeeds.
    let resp = env
        .mount(&good, &pod("split-pod"), None, secrets)
        .await
        .unwrap();
    assert_eq!(resp.files.len(), 4);
    env.finish();
}

/// Paths known only after fetching (the `.crt`/`.key` split of a certificate-backed secret, the
/// history indexes beyond 0) still may not collide with another object's file: the Mount fails
/// with InvalidArgument naming both objects instead of letting the driver keep one of them.
#[tokio::test]
async fn paths_known_only_after_fetching_are_checked_for_conflicts() {
    let mut env = Env::start(&["--write-cert-and-key-in-separate-files=true"]).await;
    env.id.grant_vault("clashkv", Access::All);
    env.id
        .allow_client_secret("clash-app", "clash-app-secret-31");
    env.fake.keyvault.add_testdata(
        "clashkv",
        Kind::Secrets,
        "web",
        "x",
        1,
        "secret-cert-backed-pem-rsa.json",
    );
    env.secret("clashkv", "other", "o1", "other-value-5521", 1);
    for (i, v) in ["h1", "h2", "h3"].iter().enumerate() {
        env.secret(
            "clashkv",
            "hist",
            v,
            &format!("hist-value-{i}-x"),
            i as i64 + 1,
        );
    }
    let secrets = r#"{"clientid":"clash-app","clientsecret":"clash-app-secret-31"}"#;
    let spc_for = |entries: &[&str]| {
        make_spc(&[
            ("keyvaultName", "clashkv"),
            ("tenantId", TENANT),
            ("objects", &objects(entries)),
        ])
    };

    let split_clash = spc_for(&[
        "objectName: web\nobjectType: secret",
        "objectName: other\nobjectType: secret\nobjectAlias: web.crt",
    ]);
    expect_err(
        env.mount(&split_clash, &pod("clash-pod"), None, secrets)
            .await,
        Code::InvalidArgument,
        &[
            "objects secret/web (objects entry at index 0) and secret/other (objects entry at index 1) both write the file \"web.crt\"",
            "give one of them a different objectAlias",
        ],
    );

    let history_clash = spc_for(&[
        "objectName: hist\nobjectType: secret\nobjectVersionHistory: 3",
        "objectName: other\nobjectType: secret\nobjectAlias: hist/1",
    ]);
    expect_err(
        env.mount(&history_clash, &pod("clash-pod"), None, secrets)
            .await,
        Code::InvalidArgument,
        &[
            "objects secret/hist (objects entry at index 0) and secret/other (objects entry at index 1) both write the file \"hist/1\"",
        ],
    );

    // Without the collision both shapes mount (the check above is not a blanket refusal).
    let fine = spc_for(&[
        "objectName: web\nobjectType: secret",
        "objectName: hist\nobjectType: secret\nobjectVersionHistory: 3",
        "objectName: other\nobjectType: secret\nobjectAlias: hist-other",
    ]);
    let resp = env
        .mount(&fine, &pod("clash-pod"), None, secrets)
        .await
        .unwrap();
    let paths: Vec<&str> = resp.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "web.crt",
            "web.key",
            "web",
            "hist/0",
            "hist/1",
            "hist/2",
            "hist-other"
        ]
    );
    env.finish();
}

// ---- 4: errors ----

#[tokio::test]
async fn errors_have_precise_codes_and_the_next_mount_succeeds() {
    let mut env = Env::start(&["--mount-timeout", "10s"]).await;
    env.id.grant_vault("errkv", Access::All);
    env.id.grant_vault("lockedkv", Access::Only(vec![]));
    env.id.allow_client_secret("err-app", "err-app-secret-31");
    env.secret("errkv", "good", "g1", "good-value-2290", 1);
    env.id.grant_vault("busykv", Access::All);
    env.secret("busykv", "throttled", "t1", "throttled-value-1", 1);
    env.secret("errkv", "a", "a1", "a-value-0001", 1);
    env.secret("errkv", "b", "b1", "b-value-0002", 1);
    env.secret("lockedkv", "locked", "l1", "locked-value-3", 1);
    let secrets = r#"{"clientid":"err-app","clientsecret":"err-app-secret-31"}"#;
    let good_objs = objects(&["objectName: good\nobjectType: secret"]);
    let good = make_spc(&[
        ("keyvaultName", "errkv"),
        ("tenantId", TENANT),
        ("objects", &good_objs),
    ]);
    let p = pod("err-pod");

    let check = async |env: &mut Env,
                       spc: &SecretProviderClass,
                       tokens: Option<&str>,
                       secrets: &str,
                       code: Code,
                       fragments: &[&str]| {
        let started = Instant::now();
        let msg = expect_err(env.mount(spc, &p, tokens, secrets).await, code, fragments);
        let mut sensitive = env.sensitive.clone();
        sensitive.extend(env.id.sensitive_strings());
        assert_clean(&msg, &sensitive, "error message");
        let elapsed = started.elapsed();
        let resp = env
            .mount(
                &good,
                &p,
                None,
                r#"{"clientid":"err-app","clientsecret":"err-app-secret-31"}"#,
            )
            .await
            .unwrap();
        assert_eq!(files(&resp), vec![file("good", 0o644, b"good-value-2290")]);
        elapsed
    };

    // Missing keyvaultName.
    let spc = make_spc(&[("tenantId", TENANT), ("objects", &good_objs)]);
    check(
        &mut env,
        &spc,
        None,
        secrets,
        Code::InvalidArgument,
        &["keyvaultName is not provided"],
    )
    .await;

    // A known parameter in the wrong case.
    let spc = make_spc(&[
        ("keyvaultName", "errkv"),
        ("tenantId", TENANT),
        ("useVMManagedIdentity", "true"),
        (
            "userAssignedIdentityId",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("objects", &good_objs),
    ]);
    check(
        &mut env,
        &spc,
        None,
        secrets,
        Code::InvalidArgument,
        &[
            "\"userAssignedIdentityId\"",
            "did you mean \"userAssignedIdentityID\"",
        ],
    )
    .await;

    // SecretNotFound.
    let objs = objects(&[
        "objectName: good\nobjectType: secret",
        "objectName: missing-secret\nobjectType: secret",
    ]);
    let spc = make_spc(&[
        ("keyvaultName", "errkv"),
        ("tenantId", TENANT),
        ("objects", &objs),
    ]);
    check(
        &mut env,
        &spc,
        None,
        secrets,
        Code::NotFound,
        &["secret/missing-secret"],
    )
    .await;

    // 403 from Key Vault.
    let objs = objects(&["objectName: locked\nobjectType: secret"]);
    let spc = make_spc(&[
        ("keyvaultName", "lockedkv"),
        ("tenantId", TENANT),
        ("objects", &objs),
    ]);
    check(
        &mut env,
        &spc,
        None,
        secrets,
        Code::PermissionDenied,
        &["secret/locked"],
    )
    .await;

    // Entra ID rejects the client secret.
    let wrong = r#"{"clientid":"err-app","clientsecret":"wrong-secret-value-99"}"#;
    env.sensitive.push("wrong-secret-value-99".into());
    check(
        &mut env,
        &good,
        None,
        wrong,
        Code::Unauthenticated,
        &["AADSTS7000215"],
    )
    .await;

    // Workload identity without the tokens attribute.
    let spc = make_spc(&[
        ("keyvaultName", "errkv"),
        ("tenantId", TENANT),
        ("clientID", "wi-app"),
        ("objects", &good_objs),
    ]);
    check(
        &mut env,
        &spc,
        None,
        "null",
        Code::FailedPrecondition,
        &["tokenRequests", WI_AUDIENCE],
    )
    .await;

    // 429 with a Retry-After beyond the Mount budget: fails fast. (A vault of its own: the
    // 429 closes a node-wide gate for that vault, by design.)
    env.fake.keyvault.push_faults(
        Some("/secrets/throttled"),
        vec![throttled(600), throttled(600), throttled(600)],
    );
    let objs = objects(&["objectName: throttled\nobjectType: secret"]);
    let spc = make_spc(&[
        ("keyvaultName", "busykv"),
        ("tenantId", TENANT),
        ("objects", &objs),
    ]);
    let elapsed = check(
        &mut env,
        &spc,
        None,
        secrets,
        Code::ResourceExhausted,
        &["secret/throttled", "429"],
    )
    .await;
    // Far below both the advised 600 s and the 10 s Mount timeout; generous for a loaded CI.
    assert!(
        elapsed < Duration::from_secs(8),
        "throttling took {elapsed:?}"
    );
    assert_eq!(env.fake.requests_to("busykv.vault.azure.net").len(), 1);
    // Within the advised wait, further Mounts of that vault fail fast without calling it.
    let started = Instant::now();
    let message = expect_err(
        env.mount(&spc, &p, None, secrets).await,
        Code::ResourceExhausted,
        &[
            "busykv.vault.azure.net is throttling requests",
            "the advised wait of ",
        ],
    );
    // The message gives what is left of the gate's 600 s: less than 600 once any time has
    // passed (599.9s on a loaded machine), never more, and far more than the time taken here.
    let left: f64 = message
        .split("the advised wait of ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no advised wait in {message:?}"));
    assert!((580.0..=600.0).contains(&left), "advised wait {left} s");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(env.fake.requests_to("busykv.vault.azure.net").len(), 1);

    // Two objects writing one path.
    let objs = objects(&[
        "objectName: a\nobjectType: secret\nobjectAlias: same",
        "objectName: b\nobjectType: secret\nobjectAlias: same",
    ]);
    let spc = make_spc(&[
        ("keyvaultName", "errkv"),
        ("tenantId", TENANT),
        ("objects", &objs),
    ]);
    check(
        &mut env,
        &spc,
        None,
        secrets,
        Code::InvalidArgument,
        &["secret/a", "secret/b", "\"same\""],
    )
    .await;

    env.finish();
}

// ---- 5: parallelism ----

#[tokio::test]
async fn fifty_secrets_are_fetched_concurrently() {
    let mut env = Env::start(&[]).await;
    env.id.grant_vault("slowkv", Access::All);
    env.id.allow_client_secret("slow-app", "slow-app-secret-12");
    // Every answer waits until all fifty requests are in flight: fetching one after another
    // would hold the first answer until the fake gives up (400) and fail the Mount, whatever the
    // machine's speed. How fast it is belongs in the benchmarks.
    let all_fifty = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let handler = env.fake.keyvault.handler();
    env.fake.route_fn("slowkv.vault.azure.net", move |r| {
        handler(r).with_hold(all_fifty.clone())
    });
    let mut entries = vec![];
    for i in 0..50 {
        env.secret(
            "slowkv",
            &format!("s{i:02}"),
            &format!("v{i:02}"),
            &format!("slow-value-{i:02}-x"),
            1,
        );
        entries.push(format!("objectName: s{i:02}\nobjectType: secret"));
    }
    let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
    let objs = objects(&refs);
    let spc = make_spc(&[
        ("keyvaultName", "slowkv"),
        ("tenantId", TENANT),
        ("objects", &objs),
    ]);
    let secrets = r#"{"clientid":"slow-app","clientsecret":"slow-app-secret-12"}"#;
    let resp = env
        .mount(&spc, &pod("slow-pod"), None, secrets)
        .await
        .unwrap();
    assert_eq!(resp.files.len(), 50);
    for (i, f) in resp.files.iter().enumerate() {
        assert_eq!(f.path, format!("s{i:02}"));
        assert_eq!(f.contents, format!("slow-value-{i:02}-x").into_bytes());
    }
    assert_eq!(env.fake.requests_to("slowkv.vault.azure.net").len(), 50);
    env.finish();
}
