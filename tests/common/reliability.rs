//! Helpers of the fault, isolation and load tests: the production server configured against the
//! fakes (proxy, CA, short Mount timeout), fake identities (Entra ID principals keyed by
//! credential), and Mount request builders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_azure_provider::grpc::proto::v1alpha1 as pb;
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use rust_azure_provider::grpc::{self, ProviderService, ServeError};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::fake_azure::{FakeAzure, FakeResponse, Request};

/// Entra ID host of the public cloud.
pub const ENTRA: &str = "login.microsoftonline.com";
/// IMDS host.
pub const IMDS: &str = "169.254.169.254";
/// NMI host (`http://localhost:2579`).
pub const NMI: &str = "localhost";
/// Tenant used by every request.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// The command-line flags that point the provider at `fake`, plus `extra`.
pub fn fake_flags(fake: &FakeAzure, mount_timeout: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("--outbound-proxy={}", fake.proxy_url()),
        // Empty: every host goes through the recording proxy, except loopback (NMI), which is
        // never proxied.
        "--no-proxy=".to_owned(),
        format!("--ca-bundle={}", fake.pki.ca_path().display()),
        format!("--mount-timeout={mount_timeout}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// The service as `serve` builds it from `args` (parsed by the real CLI parser).
pub fn service_with_args(args: &[String]) -> ProviderService {
    use clap::Parser;
    let argv = std::iter::once("rust-azure-provider".to_owned()).chain(args.iter().cloned());
    let cli = rust_azure_provider::config::Cli::try_parse_from(argv).expect("flags parse");
    let settings = cli.serve.validate().expect("flags are valid");
    let metrics = rust_azure_provider::metrics::Metrics::new();
    let provider = rust_azure_provider::app::build_provider(&settings, metrics.clone())
        .expect("provider builds");
    ProviderService::new(provider, metrics, settings.args.max_response_bytes)
}

/// The production server in-process, configured by flags.
pub struct ConfiguredServer {
    /// Keeps the socket directory alive.
    pub dir: tempfile::TempDir,
    /// Socket path.
    pub path: PathBuf,
    token: CancellationToken,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl ConfiguredServer {
    /// Binds a socket in a temp dir and serves the provider built from `args`.
    pub fn start(args: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rust-azure.sock");
        let socket = grpc::bind(&path).expect("bind");
        let token = CancellationToken::new();
        let handle = tokio::spawn(grpc::serve(
            socket,
            service_with_args(args),
            token.clone(),
            Duration::from_secs(2),
        ));
        Self {
            dir,
            path,
            token,
            handle,
        }
    }

    /// A client over a fresh connection.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        client(&self.path).await
    }

    /// Stops the server and checks that `serve` returned cleanly.
    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .expect("serve did not return within 5 s")
            .expect("serve task panicked")
            .expect("serve failed");
    }
}

/// A tonic client for the socket at `path` (no overall timeout: the server's deadline is tested).
pub async fn client(path: &Path) -> CsiDriverProviderClient<Channel> {
    CsiDriverProviderClient::new(super::provider_server::channel(path).await)
        .max_decoding_message_size(64 << 20)
}

/// How a Mount authenticates.
#[derive(Clone, Debug)]
pub enum Identity {
    /// nodePublishSecretRef client id and secret.
    ServicePrincipal {
        /// Client id.
        client_id: String,
        /// Client secret.
        secret: String,
    },
    /// Workload identity with this service-account token.
    Workload {
        /// clientID.
        client_id: String,
        /// The service-account JWT.
        sa_token: String,
    },
    /// VM managed identity (IMDS).
    VmManaged,
    /// aad-pod-identity (NMI).
    AadPod,
}

impl Identity {
    /// A service principal whose secret is `secret`.
    pub fn sp(secret: &str) -> Self {
        Self::ServicePrincipal {
            client_id: "sp-client".to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// A workload identity whose SA token is `token`.
    pub fn wi(token: &str) -> Self {
        Self::Workload {
            client_id: "wi-client".to_owned(),
            sa_token: token.to_owned(),
        }
    }
}

/// One object line of the `objects` parameter.
pub fn object_yaml(name: &str, object_type: &str) -> String {
    format!("  - |\n    objectName: {name}\n    objectType: {object_type}\n")
}

/// A Mount request for `objects` (YAML items from [`object_yaml`]) in `vault`.
pub fn mount_request(
    vault: &str,
    objects: &[String],
    identity: &Identity,
    pod: &str,
) -> pb::MountRequest {
    let mut attrs = serde_json::Map::new();
    for (k, v) in [
        ("csi.storage.k8s.io/pod.name", pod),
        ("csi.storage.k8s.io/pod.namespace", "default"),
        (
            "csi.storage.k8s.io/pod.uid",
            "0b6d6f4c-1111-2222-3333-444455556666",
        ),
        ("csi.storage.k8s.io/serviceAccount.name", "default"),
        ("secretProviderClass", "spc"),
        ("keyvaultName", vault),
        ("tenantId", TENANT),
    ] {
        attrs.insert(k.to_owned(), json!(v));
    }
    attrs.insert(
        "objects".to_owned(),
        json!(format!("array:\n{}", objects.concat())),
    );
    let mut secrets = "null".to_owned();
    match identity {
        Identity::ServicePrincipal { client_id, secret } => {
            secrets = json!({"clientid": client_id, "clientsecret": secret}).to_string();
        }
        Identity::Workload {
            client_id,
            sa_token,
        } => {
            attrs.insert("clientID".to_owned(), json!(client_id));
            attrs.insert(
                "csi.storage.k8s.io/serviceAccount.tokens".to_owned(),
                json!(
                    json!({"api://AzureADTokenExchange": {"token": sa_token, "expirationTimestamp": "2099-01-01T00:00:00Z"}})
                        .to_string()
                ),
            );
        }
        Identity::VmManaged => {
            attrs.insert("useVMManagedIdentity".to_owned(), json!("true"));
        }
        Identity::AadPod => {
            attrs.insert("usePodIdentity".to_owned(), json!("true"));
        }
    }
    pb::MountRequest {
        attributes: serde_json::Value::Object(attrs).to_string(),
        secrets,
        target_path: format!("/var/lib/kubelet/pods/{pod}/volumes/kubernetes.io~csi/v/mount"),
        permission: "420".to_owned(),
        current_object_version: vec![],
    }
}

/// The contents of the file at `path` in a Mount response.
pub fn file<'a>(resp: &'a pb::MountResponse, path: &str) -> &'a [u8] {
    &resp
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path} in the response"))
        .contents
}

/// Fake Entra ID that issues a distinct access token per credential (client secret or client
/// assertion), counting token requests.
#[derive(Clone, Default)]
pub struct FakeEntra {
    /// credential -> access token.
    principals: Arc<Mutex<HashMap<String, String>>>,
    /// Token requests received.
    pub requests: Arc<AtomicUsize>,
}

impl FakeEntra {
    /// Routes Entra ID of the public cloud to a new fake.
    pub fn install(fake: &FakeAzure) -> Self {
        let me = Self::default();
        let m = me.clone();
        fake.route_fn(ENTRA, move |r| m.answer(r));
        me
    }

    /// Makes `credential` (client secret or SA token) yield `access_token`.
    pub fn principal(&self, credential: &str, access_token: &str) {
        self.principals
            .lock()
            .expect("principals")
            .insert(credential.to_owned(), access_token.to_owned());
    }

    fn answer(&self, r: &Request) -> FakeResponse {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let form = r.form();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let credential = get("client_secret").or_else(|| get("client_assertion"));
        let token =
            credential.and_then(|c| self.principals.lock().expect("principals").get(&c).cloned());
        match token {
            Some(t) => entra_token(&t),
            None => FakeResponse::json(
                401,
                json!({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}).to_string(),
            ),
        }
    }
}

/// A successful Entra ID token response.
pub fn entra_token(access_token: &str) -> FakeResponse {
    FakeResponse::json(
        200,
        json!({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":access_token}).to_string(),
    )
}

/// A successful IMDS token response.
pub fn imds_token(access_token: &str) -> FakeResponse {
    FakeResponse::json(
        200,
        json!({"access_token":access_token,"client_id":"c","expires_in":"86399","expires_on":"4102444800","ext_expires_in":"86399","not_before":"1","resource":"https://vault.azure.net","token_type":"Bearer"}).to_string(),
    )
}

/// A successful NMI token response.
pub fn nmi_token(access_token: &str) -> FakeResponse {
    FakeResponse::json(
        200,
        json!({"token":{"access_token":access_token,"refresh_token":"","expires_in":"3599","expires_on":"4102444800","not_before":"1","resource":"https://vault.azure.net","token_type":"Bearer"},"clientid":"nmi-client"}).to_string(),
    )
}
