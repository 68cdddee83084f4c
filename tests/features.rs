//! The rust-azure extensions over the real socket with the shipped binary (and, for identity
//! binding, the production server in process): `jmesPath` extraction, several vaults in one
//! SecretProviderClass, service-account tokens in the Mount's `secrets`, and the
//! secrets-store-sync-controller's Mount. Requests are built as the driver builds them
//! (`spc::driver_attributes`); every provider logs at trace level and its whole output is
//! checked for the values the fakes handed out.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code fails the test on setup errors"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::fake_azure::FakeAzure;
use common::fake_identity::{FakeIdentity, Source};
use common::fake_keyvault::Access;
use common::provider_process::ProviderProcess;
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use rust_azure_provider::grpc::proto::v1alpha1::{MountRequest, MountResponse, ObjectVersion};
use rust_azure_provider::spc::{self, PodInfo, SecretProviderClass};
use tonic::Code;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_rust-azure-provider");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0f6c1e5a-9d8b-4c1e-a3f2-5b7d9e0c4a21";
const LOG_FILTER: &str = "rust_azure_provider=trace,debug";
const WI_AUDIENCE: &str = "api://AzureADTokenExchange";
const JSON_EXAMPLE: &str = include_str!("../deploy/examples/jmespath-secretproviderclass.yaml");
const MULTI_VAULT_EXAMPLE: &str =
    include_str!("../deploy/examples/multi-vault-secretproviderclass.yaml");

type Client = CsiDriverProviderClient<Channel>;

struct Env {
    fake: FakeAzure,
    id: FakeIdentity,
    provider: ProviderProcess,
    client: Client,
    sensitive: Vec<String>,
}

impl Env {
    async fn start() -> Self {
        let fake = FakeAzure::start().await;
        let id = FakeIdentity::install(&fake);
        let provider = ProviderProcess::start(
            Path::new(BIN),
            &fake.proxy_url(),
            fake.pki.ca_path(),
            &["--log-filter", LOG_FILTER],
        )
        .await
        .expect("provider starts");
        let client = provider.client().await.expect("client connects");
        Self {
            fake,
            id,
            provider,
            client,
            sensitive: vec![],
        }
    }

    fn secret(&mut self, vault: &str, name: &str, version: &str, value: &str) {
        self.fake
            .keyvault
            .add_secret(vault, name, version, value, 1_700_000_000);
        self.sensitive.push(value.to_owned());
    }

    async fn mount(&mut self, request: MountRequest) -> Result<MountResponse, tonic::Status> {
        self.client
            .mount(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A pod's Mount with workload identity (the tokens attribute).
    async fn mount_wi(
        &mut self,
        spc: &SecretProviderClass,
        sa_token: &str,
    ) -> Result<MountResponse, tonic::Status> {
        self.sensitive.push(sa_token.to_owned());
        self.id.allow_assertion(CLIENT_ID, sa_token);
        let request = pod_request(spc, Some(&tokens_json(sa_token)), "null");
        self.mount(request).await
    }

    fn sensitive_all(&self) -> Vec<String> {
        let mut s = self.sensitive.clone();
        s.extend(self.id.sensitive_strings());
        s
    }

    fn finish(self) -> String {
        let sensitive = self.sensitive_all();
        let logs = self.provider.stop();
        assert!(
            logs.contains("TRACE") || logs.contains("DEBUG"),
            "the provider did not log at debug/trace level; the hygiene check would be vacuous"
        );
        assert_clean(&logs, &sensitive, "provider output");
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

fn pod(name: &str) -> PodInfo {
    PodInfo {
        name: name.into(),
        namespace: "default".into(),
        uid: "6d5f1c2e-0000-4000-8000-00000000f00d".into(),
        service_account: "app".into(),
    }
}

fn pod_request(spc: &SecretProviderClass, tokens: Option<&str>, secrets: &str) -> MountRequest {
    let p = pod("features-pod");
    let attributes = spc::driver_attributes(spc, &p, tokens);
    MountRequest {
        attributes: serde_json::to_string(&attributes).unwrap(),
        secrets: secrets.to_owned(),
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets-store-inline/mount",
            p.uid
        ),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

fn tokens_json(sa_token: &str) -> String {
    serde_json::json!({WI_AUDIENCE: {"token": sa_token, "expirationTimestamp": "2099-01-01T00:00:00Z"}})
        .to_string()
}

/// An example with its placeholders filled in and its vault names replaced.
fn example(text: &str, vaults: &[(&str, &str)]) -> SecretProviderClass {
    let mut text = text
        .replace("<client id of the identity>", CLIENT_ID)
        .replace("<tenant id>", TENANT);
    for (from, to) in vaults {
        text = text.replace(from, to);
    }
    spc::parse_documents(&text).unwrap().remove(0)
}

/// A workload-identity class with these objects (one `- |` block per entry).
fn make_spc(keyvault: Option<&str>, entries: &[&str]) -> SecretProviderClass {
    let mut objects = String::from("array:\n");
    for e in entries {
        objects.push_str("  - |\n");
        for line in e.lines() {
            objects.push_str("    ");
            objects.push_str(line);
            objects.push('\n');
        }
    }
    let mut yaml = format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: spc-features\n  namespace: default\nspec:\n  provider: rust-azure\n  parameters:\n    clientID: \"{CLIENT_ID}\"\n    tenantID: \"{TENANT}\"\n"
    );
    if let Some(kv) = keyvault {
        yaml.push_str(&format!("    keyvaultName: \"{kv}\"\n"));
    }
    let mut doc: SecretProviderClass = spc::parse_documents(&yaml).unwrap().remove(0);
    doc.spec.parameters.insert("objects".into(), objects);
    doc
}

fn files(resp: &MountResponse) -> Vec<(String, i32, String)> {
    resp.files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                f.mode,
                String::from_utf8(f.contents.clone()).unwrap(),
            )
        })
        .collect()
}

fn file(path: &str, mode: i32, contents: &str) -> (String, i32, String) {
    (path.to_owned(), mode, contents.to_owned())
}

fn versions(resp: &MountResponse) -> Vec<(String, String)> {
    resp.object_version
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect()
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
        Ok(r) => panic!("expected {code:?}, got files {:?}", files(&r)),
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

/// The Secret the driver's sync controller builds from `secretObjects`, read from the files as
/// the driver's writer puts them on disk.
fn synced_secret(spc: &SecretProviderClass, resp: &MountResponse) -> BTreeMap<String, String> {
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
    spc.spec.secret_objects[0]
        .data
        .iter()
        .map(|d| {
            let bytes = std::fs::read(dir.path().join(&d.object_name)).unwrap();
            (d.key.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

// ---- 1: jmesPath ----

const DB_CONFIG: &str = r#"{"username":"app-user-7731","password":"pw-Jm3s!9f2Qx","host":"db.internal.example","port":5432,"replicas":["r1.internal","r2.internal"],"note":null}"#;

#[tokio::test]
async fn jmes_path_extraction_through_mount_and_secret_sync() {
    let mut env = Env::start().await;
    env.id.grant_vault("jsonkv", Access::All);
    env.secret("jsonkv", "db-config", "c0ffee01", DB_CONFIG);

    // The example as shipped.
    let spc = example(JSON_EXAMPLE, &[("myk8skv", "jsonkv")]);
    let resp = env.mount_wi(&spc, "sa-jwt-json.e30.sig").await.unwrap();
    assert_eq!(
        files(&resp),
        vec![
            file("db-config", 0o644, DB_CONFIG),
            file("db-username", 0o644, "app-user-7731"),
            file("db-password", 0o600, "pw-Jm3s!9f2Qx"),
            file(
                "db-endpoint.json",
                0o644,
                r#"{"host":"db.internal.example","port":5432}"#
            ),
        ]
    );
    // Derived files add no object versions: the parent's covers them.
    assert_eq!(versions(&resp), vec![pair("secret/db-config", "c0ffee01")]);
    assert_eq!(
        synced_secret(&spc, &resp),
        BTreeMap::from([
            ("password".to_owned(), "pw-Jm3s!9f2Qx".to_owned()),
            ("username".to_owned(), "app-user-7731".to_owned()),
        ])
    );
    let kv = env.fake.requests_to("jsonkv.vault.azure.net");
    assert_eq!(kv.len(), 1, "one GET for the object and all its entries");

    // Other result types, nested aliases, the object's own mode, objectEncoding first.
    let encoded = B64.encode(DB_CONFIG);
    env.secret("jsonkv", "db-config-b64", "c0ffee02", &encoded);
    let spc = make_spc(
        Some("jsonkv"),
        &[
            "objectName: db-config-b64\nobjectType: secret\nobjectEncoding: base64\nobjectAlias: conf/all.json\nfilePermission: \"0640\"\njmesPath:\n  - path: port\n    objectAlias: conf/port\n  - path: replicas\n    objectAlias: conf/replicas\n  - path: \"replicas[-1]\"\n    objectAlias: conf/last-replica\n    filePermission: \"0400\"\n  - path: \"length(replicas)\"\n    objectAlias: conf/replica-count",
        ],
    );
    let resp = env.mount_wi(&spc, "sa-jwt-json.e30.sig").await.unwrap();
    assert_eq!(
        files(&resp),
        vec![
            file("conf/all.json", 0o640, DB_CONFIG),
            file("conf/port", 0o640, "5432"),
            file("conf/replicas", 0o640, r#"["r1.internal","r2.internal"]"#),
            file("conf/last-replica", 0o400, "r2.internal"),
            file("conf/replica-count", 0o640, "2"),
        ]
    );
    assert_eq!(
        versions(&resp),
        vec![pair("secret/db-config-b64", "c0ffee02")]
    );
    let logs = env.finish();
    assert!(logs.contains("mount succeeded"), "{logs}");
}

#[tokio::test]
async fn jmes_path_errors_have_codes_and_never_show_the_value() {
    let mut env = Env::start().await;
    env.id.grant_vault("jsonkv", Access::All);
    env.secret("jsonkv", "db-config", "v1", DB_CONFIG);
    env.secret("jsonkv", "plain", "v1", "plain-Text-Secret-0042");
    env.secret("jsonkv", "other", "v1", "other-value-5150");

    // Invalid before any network call: InvalidArgument, no token request, no Key Vault GET.
    let invalid: &[(&[&str], &[&str])] = &[
        (
            &[
                "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: \"users[\"\n    objectAlias: u",
            ],
            &[
                "objectName:db-config",
                "jmesPath[0].path \"users[\" is not a valid JMESPath expression",
            ],
        ),
        (
            &[
                "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: \"lenght(users)\"\n    objectAlias: u",
            ],
            &["is not a valid JMESPath expression: unknown function lenght()"],
        ),
        (
            &["objectName: db-config\nobjectType: secret\njmesPath:\n  - path: username"],
            &["jmesPath[0].objectAlias is not set"],
        ),
        (
            &[
                "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: [a]",
            ],
            &[
                "unmarshal failed for keyVaultObjects at index 0",
                "expected jmesPath objectAlias as a single string value",
            ],
        ),
        (
            &[
                "objectName: signing\nobjectType: key\njmesPath:\n  - path: kty\n    objectAlias: kty",
            ],
            &[
                "objectType:key",
                "jmesPath is only supported for objectType: secret",
            ],
        ),
        (
            &["objectName: web\nobjectType: cert\njmesPath:\n  - path: a\n    objectAlias: b"],
            &["jmesPath is only supported for objectType: secret"],
        ),
        (
            &[
                "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: ../escape",
            ],
            &["jmesPath[0].objectAlias: file name must not contain '..'"],
        ),
        (
            &[
                "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: other",
                "objectName: other\nobjectType: secret",
            ],
            &[
                "objects secret/db-config (objects entry at index 0) and secret/other (objects entry at index 1) both write the file \"other\"",
            ],
        ),
        (
            &[
                "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: db-config",
            ],
            &["writes the file \"db-config\" twice"],
        ),
    ];
    for (entries, fragments) in invalid {
        let before = (
            env.id.total(),
            env.fake.requests_to("jsonkv.vault.azure.net").len(),
        );
        let spc = make_spc(Some("jsonkv"), entries);
        let msg = expect_err(
            env.mount_wi(&spc, "sa-jwt-errors.e30.sig").await,
            Code::InvalidArgument,
            fragments,
        );
        assert_clean(&msg, &env.sensitive_all(), "error message");
        assert_eq!(
            (
                env.id.total(),
                env.fake.requests_to("jsonkv.vault.azure.net").len()
            ),
            before,
            "a network call before rejecting: {msg}"
        );
    }

    // Content that does not fit: FailedPrecondition naming object, path and alias, never the value.
    let failing: &[(&str, &[&str])] = &[
        (
            "objectName: plain\nobjectType: secret\njmesPath:\n  - path: password\n    objectAlias: pw",
            &[
                "secret/plain: jmesPath entry with path \"password\" and objectAlias \"pw\": the secret's value is not JSON (syntax error at line 1 column 1)",
            ],
        ),
        (
            "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: username\n    objectAlias: u\n  - path: passwd\n    objectAlias: pw",
            &[
                "secret/db-config: jmesPath entry with path \"passwd\" and objectAlias \"pw\": the expression yields null",
            ],
        ),
        (
            "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: note\n    objectAlias: note",
            &["path \"note\" and objectAlias \"note\": the expression yields null"],
        ),
        (
            "objectName: db-config\nobjectType: secret\njmesPath:\n  - path: \"length(port)\"\n    objectAlias: n",
            &["the expression fails on the secret's value: Argument 0 expects type"],
        ),
    ];
    for (entry, fragments) in failing {
        let spc = make_spc(Some("jsonkv"), &[entry]);
        let msg = expect_err(
            env.mount_wi(&spc, "sa-jwt-errors.e30.sig").await,
            Code::FailedPrecondition,
            fragments,
        );
        assert_clean(&msg, &env.sensitive_all(), "error message");
        for fragment in ["app-user", "5432", "db.internal", "plain-Text"] {
            assert!(!msg.contains(fragment), "{msg}");
        }
    }
    env.finish();
}

// ---- 2: several vaults ----

#[tokio::test]
async fn several_vaults_one_token_distinct_stable_ids() {
    let mut env = Env::start().await;
    for vault in ["platform-kv", "team-a-kv", "team-b-kv"] {
        env.id.grant_vault(vault, Access::All);
    }
    env.secret("platform-kv", "registry-token", "p1", "registry-Token-8812");
    env.secret("team-a-kv", "db-password", "a1", "team-A-password-19");
    env.secret("team-b-kv", "db-password", "b1", "team-B-password-27");

    let spc = example(MULTI_VAULT_EXAMPLE, &[]);
    let expected_files = vec![
        file("registry-token", 0o644, "registry-Token-8812"),
        file("db-password", 0o644, "team-A-password-19"),
        file("team-b/db-password", 0o644, "team-B-password-27"),
    ];
    // Objects without the field keep the reference id exactly; the others name their vault.
    let expected_versions = vec![
        pair("secret/registry-token", "p1"),
        pair("secret/db-password@team-a-kv", "a1"),
        pair("secret/db-password@team-b-kv", "b1"),
    ];
    let resp = env.mount_wi(&spc, "sa-jwt-multi.e30.sig").await.unwrap();
    assert_eq!(files(&resp), expected_files);
    assert_eq!(versions(&resp), expected_versions);
    assert_eq!(
        env.id.count(Source::Entra),
        1,
        "one token serves every vault of a Mount"
    );
    for vault in ["platform-kv", "team-a-kv", "team-b-kv"] {
        let kv = env.fake.requests_to(&format!("{vault}.vault.azure.net"));
        assert_eq!(kv.len(), 1, "{vault}: {kv:?}");
        assert!(kv[0].tls);
    }
    // A second Mount (as after a pod restart, with rotation's current versions): same ids.
    let mut request = pod_request(&spc, Some(&tokens_json("sa-jwt-multi.e30.sig")), "null");
    request.current_object_version = resp
        .object_version
        .iter()
        .map(|v| ObjectVersion {
            id: v.id.clone(),
            version: v.version.clone(),
        })
        .collect();
    let again = env.mount(request).await.unwrap();
    assert_eq!(versions(&again), expected_versions);
    assert_eq!(env.id.count(Source::Entra), 1, "the cached token serves it");

    // The class-level keyvaultName may go when every object names a vault.
    let spc = make_spc(
        None,
        &[
            "objectName: db-password\nobjectType: secret\nkeyvaultName: team-a-kv\nobjectAlias: a",
            "objectName: db-password\nobjectType: secret\nkeyvaultName: team-b-kv\nobjectAlias: b",
        ],
    );
    let resp = env.mount_wi(&spc, "sa-jwt-multi-2.e30.sig").await.unwrap();
    assert_eq!(
        files(&resp),
        vec![
            file("a", 0o644, "team-A-password-19"),
            file("b", 0o644, "team-B-password-27"),
        ]
    );
    assert_eq!(
        versions(&resp),
        vec![
            pair("secret/db-password@team-a-kv", "a1"),
            pair("secret/db-password@team-b-kv", "b1"),
        ]
    );
    assert_eq!(
        env.id.count(Source::Entra),
        2,
        "a new SA token, one more token"
    );

    // Neither place names a vault for some object: InvalidArgument naming both places.
    let spc = make_spc(
        None,
        &[
            "objectName: db-password\nobjectType: secret\nkeyvaultName: team-a-kv",
            "objectName: registry-token\nobjectType: secret\nobjectAlias: r",
        ],
    );
    let before = env.id.total();
    expect_err(
        env.mount_wi(&spc, "sa-jwt-multi-2.e30.sig").await,
        Code::InvalidArgument,
        &[
            "keyvaultName is not provided",
            "spec.parameters.keyvaultName",
            "keyvaultName in every entry of spec.parameters.objects",
        ],
    );
    // An invalid per-object vault name is InvalidArgument before any network call.
    let spc = make_spc(
        None,
        &["objectName: s\nobjectType: secret\nkeyvaultName: team-a-kv.vault.azure.net"],
    );
    expect_err(
        env.mount_wi(&spc, "sa-jwt-multi-2.e30.sig").await,
        Code::InvalidArgument,
        &["keyvaultName \"team-a-kv.vault.azure.net\" is not valid"],
    );
    assert_eq!(env.id.total(), before);

    // An object missing from its own vault: NotFound naming that vault.
    let spc = make_spc(
        Some("platform-kv"),
        &[
            "objectName: registry-token\nobjectType: secret",
            "objectName: registry-token\nobjectType: secret\nkeyvaultName: team-b-kv\nobjectAlias: b",
        ],
    );
    expect_err(
        env.mount_wi(&spc, "sa-jwt-multi-2.e30.sig").await,
        Code::NotFound,
        &["team-b-kv.vault.azure.net", "registry-token"],
    );

    // jmesPath and per-object vaults together.
    env.secret("team-a-kv", "db-config", "j1", DB_CONFIG);
    let spc = make_spc(
        None,
        &[
            "objectName: db-config\nobjectType: secret\nkeyvaultName: team-a-kv\njmesPath:\n  - path: host\n    objectAlias: host",
        ],
    );
    let resp = env.mount_wi(&spc, "sa-jwt-multi-2.e30.sig").await.unwrap();
    assert_eq!(
        files(&resp),
        vec![
            file("db-config", 0o644, DB_CONFIG),
            file("host", 0o644, "db.internal.example"),
        ]
    );
    assert_eq!(
        versions(&resp),
        vec![pair("secret/db-config@team-a-kv", "j1")]
    );
    env.finish();
}

// ---- 3: tokens in `secrets`, the sync controller's Mount ----

#[tokio::test]
async fn workload_identity_token_in_secrets_and_the_sync_controller_mount() {
    let mut env = Env::start().await;
    env.id.grant_vault("synckv", Access::All);
    env.secret("synckv", "app-secret", "s1", "sync-Value-6620");
    let spc = make_spc(
        Some("synckv"),
        &["objectName: app-secret\nobjectType: secret"],
    );

    // Kubernetes 1.35 `serviceAccountTokenInSecrets`: the tokens move from the attributes
    // into `secrets`, under the same key.
    let sa = "sa-jwt-in-secrets.e30.sig";
    env.sensitive.push(sa.into());
    env.id.allow_assertion(CLIENT_ID, sa);
    let secrets = serde_json::json!({"csi.storage.k8s.io/serviceAccount.tokens": tokens_json(sa)})
        .to_string();
    let resp = env.mount(pod_request(&spc, None, &secrets)).await.unwrap();
    assert_eq!(
        files(&resp),
        vec![file("app-secret", 0o644, "sync-Value-6620")]
    );
    let entra = env.id.requests(Source::Entra);
    assert_eq!(entra.len(), 1);
    let form: BTreeMap<String, String> = entra[0].form().into_iter().collect();
    assert_eq!(form["client_assertion"], sa);
    assert_eq!(form["client_id"], CLIENT_ID);

    // Driver v1.6 under Kubernetes 1.35 copies the tokens into the attributes and leaves them in
    // `secrets` too: the same token, one token request for both Mounts.
    let both = env
        .mount(pod_request(&spc, Some(&tokens_json(sa)), &secrets))
        .await
        .unwrap();
    assert_eq!(files(&both), files(&resp));
    assert_eq!(env.id.count(Source::Entra), 1, "the cached token serves it");

    // Service principal mode never takes the tokens in `secrets` for credentials.
    let mut sp = spc.clone();
    sp.spec.parameters.remove("clientID");
    let msg = expect_err(
        env.mount(pod_request(&sp, None, &secrets)).await,
        Code::FailedPrecondition,
        &["could not find clientid in secrets"],
    );
    assert_clean(&msg, &env.sensitive_all(), "error message");
    assert_eq!(env.id.count(Source::Entra), 1);

    // The secrets-store-sync-controller's Mount: a target path that does not exist on the node,
    // permission 420, no current object versions, `secrets` `{}`, the tokens attribute for the
    // SecretSync's service account.
    let target = Path::new("/mnt/secrets-store");
    let existed = target.exists();
    let sync_sa = "sa-jwt-secretsync.e30.sig";
    env.sensitive.push(sync_sa.into());
    env.id.allow_assertion(CLIENT_ID, sync_sa);
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "csi.storage.k8s.io/pod.name".to_owned(),
        "secret-sync-controller".to_owned(),
    );
    attributes.insert(
        "csi.storage.k8s.io/pod.namespace".to_owned(),
        "default".to_owned(),
    );
    attributes.insert(
        "csi.storage.k8s.io/serviceAccount.name".to_owned(),
        "app".to_owned(),
    );
    attributes.insert(
        "csi.storage.k8s.io/serviceAccount.tokens".to_owned(),
        tokens_json(sync_sa),
    );
    attributes.extend(spc.spec.parameters.clone());
    let request = MountRequest {
        attributes: serde_json::to_string(&attributes).unwrap(),
        secrets: "{}".into(),
        target_path: target.display().to_string(),
        permission: "420".into(),
        current_object_version: vec![],
    };
    let resp = env.mount(request).await.unwrap();
    assert_eq!(
        files(&resp),
        vec![file("app-secret", 0o644, "sync-Value-6620")]
    );
    assert_eq!(versions(&resp), vec![pair("secret/app-secret", "s1")]);
    assert_eq!(
        target.exists(),
        existed,
        "the provider never touches the target path"
    );
    let entra = env.id.requests(Source::Entra);
    assert_eq!(entra.len(), 2);
    let form: BTreeMap<String, String> = entra[1].form().into_iter().collect();
    assert_eq!(form["client_assertion"], sync_sa);

    // Neither the attribute nor `secrets` holds tokens: FailedPrecondition naming the fix.
    let msg = expect_err(
        env.mount(pod_request(&spc, None, "{}")).await,
        Code::FailedPrecondition,
        &["tokenRequests", WI_AUDIENCE],
    );
    assert_clean(&msg, &env.sensitive_all(), "error message");
    env.finish();
}

/// Identity binding with the tokens in `secrets`, through the production server on a real
/// socket: the AKS token proxy is a local HTTPS server named by `--sni-name`, trusted through
/// the discovery CA the server is built with.
#[tokio::test]
async fn identity_binding_token_in_secrets() {
    use clap::Parser;
    use common::provider_server::{channel, serve_service_at};
    use rust_azure_provider::auth::sni_discovery::DiscoveryTarget;
    use rust_azure_provider::grpc::ProviderService;

    const SNI: &str = "a0123456789abcdefghijklmnopqrstuv.ests.aks";
    let fake = FakeAzure::start_with_hosts(&[SNI]).await;
    let id = FakeIdentity::install(&fake);
    id.grant_vault("bindkv", Access::All);
    // The token proxy answers like Entra ID and keeps the proxy's authority in the Host header.
    id.serve_entra_at(&fake, "127.0.0.1");
    fake.keyvault
        .add_secret("bindkv", "bound", "b1", "bound-Value-4471", 1);
    let proxy_url = format!("https://127.0.0.1:{}", fake.https_addr.port());
    let cli = rust_azure_provider::config::Cli::try_parse_from([
        "rust-azure-provider",
        "--token-proxy-url",
        &proxy_url,
        "--sni-name",
        SNI,
        "--outbound-proxy",
        &fake.proxy_url(),
        "--ca-bundle",
        &fake.pki.ca_path().display().to_string(),
    ])
    .unwrap();
    let settings = cli.serve.validate().unwrap();
    let metrics = rust_azure_provider::metrics::Metrics::new();
    let provider = rust_azure_provider::app::build_provider_with_discovery(
        &settings,
        metrics.clone(),
        DiscoveryTarget {
            host: "127.0.0.1".into(),
            port: fake.https_addr.port(),
            ca_path: fake.pki.ca_path().to_path_buf(),
            timeout: std::time::Duration::from_secs(5),
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    let (stop, handle) = serve_service_at(
        &path,
        ProviderService::new(provider, metrics, 4 << 20),
        std::time::Duration::from_secs(5),
    );
    let mut client = CsiDriverProviderClient::new(channel(&path).await);

    let binding_token = "sa-jwt-binding.e30.sig";
    id.allow_assertion(CLIENT_ID, binding_token);
    let tokens = serde_json::json!({"api://AKSIdentityBinding": {"token": binding_token, "expirationTimestamp": "2099-01-01T00:00:00Z"}}).to_string();
    let mut spc = make_spc(Some("bindkv"), &["objectName: bound\nobjectType: secret"]);
    spc.spec
        .parameters
        .insert("useAzureTokenProxy".into(), "true".into());
    let secrets =
        serde_json::json!({"csi.storage.k8s.io/serviceAccount.tokens": tokens}).to_string();
    let resp = client
        .mount(pod_request(&spc, None, &secrets))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(files(&resp), vec![file("bound", 0o644, "bound-Value-4471")]);
    let seen = id.requests(Source::Entra);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].host_header,
        format!("127.0.0.1:{}", fake.https_addr.port()),
        "identity binding goes to the token proxy"
    );
    let form: BTreeMap<String, String> = seen[0].form().into_iter().collect();
    assert_eq!(form["client_assertion"], binding_token);
    assert_eq!(form["client_id"], CLIENT_ID);

    // Without the tokens anywhere: FailedPrecondition naming the CSIDriver fix.
    let status = client
        .mount(pod_request(&spc, None, "{}"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("api://AKSIdentityBinding"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(binding_token));
    stop.cancel();
    handle.await.unwrap().unwrap();
}
