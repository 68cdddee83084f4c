//! Stateful fake Key Vault: named vaults holding secrets, keys and certificates with versions,
//! enabled flags and creation times, access control by bearer token, version paging, and
//! scripted faults (status sequences, delays, resets).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::fake_azure::{FakeResponse, Handler, Request};

/// Reads a recorded body from `shared/testdata/keyvault-responses/` (fails loudly if missing).
pub fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/keyvault-responses")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("Key Vault testdata {} is missing: {e}", path.display()))
}

/// `secrets`, `keys` or `certificates`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// secrets
    Secrets,
    /// keys
    Keys,
    /// certificates
    Certificates,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "secrets" => Some(Self::Secrets),
            "keys" => Some(Self::Keys),
            "certificates" => Some(Self::Certificates),
            _ => None,
        }
    }

    fn segment(self) -> &'static str {
        match self {
            Self::Secrets => "secrets",
            Self::Keys => "keys",
            Self::Certificates => "certificates",
        }
    }

    fn not_found(self, name: &str) -> Vec<u8> {
        let (code, noun) = match self {
            Self::Secrets => ("SecretNotFound", "secret"),
            Self::Keys => ("KeyNotFound", "key"),
            Self::Certificates => ("CertificateNotFound", "certificate"),
        };
        json!({"error": {"code": code, "message": format!("A {noun} with (name/id) {name} was not found in this key vault. If you recently deleted this {noun} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")}})
            .to_string()
            .into_bytes()
    }
}

/// One stored version.
#[derive(Clone, Debug)]
pub struct Version {
    /// Version id.
    pub version: String,
    /// Enabled flag.
    pub enabled: bool,
    /// Creation time (unix seconds).
    pub created: i64,
    /// Body template: JSON with `{ID}` placeholders replaced by the object id, or a raw body.
    pub body: Body,
}

/// Response body of a version.
#[derive(Clone, Debug)]
pub enum Body {
    /// Built from the fields (secret value, key JWK, cert base64 DER).
    Json(serde_json::Value),
    /// Served exactly as stored (e.g. a testdata recording).
    Raw(Vec<u8>),
}

/// Who may read what.
#[derive(Clone, Debug)]
pub enum Access {
    /// Everything in the vault.
    All,
    /// Only these (kind, name) pairs.
    Only(Vec<(Kind, String)>),
}

/// A scripted fault, consumed in order by matching requests.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Only requests whose path contains this (None: any).
    pub path_contains: Option<String>,
    /// What to answer.
    pub response: FakeResponse,
}

/// The Key Vault resource (token audience) of the public cloud.
pub const PUBLIC_RESOURCE: &str = "https://vault.azure.net";

/// Vault DNS suffix and Key Vault resource of every built-in cloud: a vault under a suffix accepts
/// only tokens issued for that cloud's resource, as the real service does (`AKV10022`).
pub const CLOUD_VAULTS: [(&str, &str); 4] = [
    ("vault.azure.net", PUBLIC_RESOURCE),
    ("vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"),
    ("vault.azure.cn", "https://vault.azure.cn"),
    ("vault.microsoftazure.de", "https://vault.microsoftazure.de"),
];

#[derive(Default)]
struct Vault {
    objects: HashMap<(Kind, String), Vec<Version>>,
    /// Token -> what it may read and the resource (audience) it was issued for.
    tokens: HashMap<String, (Access, String)>,
}

#[derive(Default)]
struct State {
    vaults: HashMap<String, Vault>,
    faults: VecDeque<Fault>,
    page_size: Option<usize>,
    /// When set, every list page links to this host instead of the request's host.
    next_link_host: Option<String>,
    /// Custom clouds' vault suffixes and resources (besides [`CLOUD_VAULTS`]).
    custom_clouds: Vec<(String, String)>,
    /// Added to every answer that has no delay of its own (simulated service latency).
    latency: Option<Duration>,
}

/// The fake Key Vault (cheap clone; share with the handler).
#[derive(Clone, Default)]
pub struct FakeKeyVault {
    state: Arc<Mutex<State>>,
}

impl FakeKeyVault {
    /// An empty fake (no vaults).
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("fake kv lock"))
    }

    /// Creates a vault (idempotent).
    pub fn add_vault(&self, vault: &str) {
        self.with(|s| {
            s.vaults.entry(vault.to_ascii_lowercase()).or_default();
        });
    }

    /// Lets `token`, issued for the public cloud's Key Vault resource, read `access` in `vault`.
    pub fn grant(&self, vault: &str, token: &str, access: Access) {
        self.grant_for(vault, token, access, PUBLIC_RESOURCE);
    }

    /// Lets `token`, issued for `audience`, read `access` in `vault` (only on hosts of the cloud
    /// whose Key Vault resource is `audience`).
    pub fn grant_for(&self, vault: &str, token: &str, access: Access, audience: &str) {
        self.with(|s| {
            s.vaults
                .entry(vault.to_ascii_lowercase())
                .or_default()
                .tokens
                .insert(token.to_owned(), (access, audience.to_owned()));
        });
    }

    /// Registers a custom cloud's vault DNS suffix and Key Vault resource (route the suffix to
    /// [`FakeKeyVault::handler`] separately).
    pub fn add_cloud(&self, dns_suffix: &str, resource: &str) {
        self.with(|s| {
            s.custom_clouds
                .push((dns_suffix.to_ascii_lowercase(), resource.to_owned()));
        });
    }

    /// Adds a version of an object.
    pub fn add_version(&self, vault: &str, kind: Kind, name: &str, version: Version) {
        self.with(|s| {
            s.vaults
                .entry(vault.to_ascii_lowercase())
                .or_default()
                .objects
                .entry((kind, name.to_owned()))
                .or_default()
                .push(version);
        });
    }

    /// Adds an enabled secret version with a plain value.
    pub fn add_secret(&self, vault: &str, name: &str, version: &str, value: &str, created: i64) {
        self.add_version(
            vault,
            Kind::Secrets,
            name,
            Version {
                version: version.to_owned(),
                enabled: true,
                created,
                body: Body::Json(json!({"value": value})),
            },
        );
    }

    /// Adds a version served from a testdata file as-is.
    pub fn add_testdata(
        &self,
        vault: &str,
        kind: Kind,
        name: &str,
        version: &str,
        created: i64,
        file: &str,
    ) {
        self.add_version(
            vault,
            kind,
            name,
            Version {
                version: version.to_owned(),
                enabled: true,
                created,
                body: Body::Raw(testdata(file)),
            },
        );
    }

    /// The secret material of every stored version (secret values, private key components,
    /// certificate bodies): strings that must never appear in a log.
    pub fn stored_values(&self) -> Vec<String> {
        let bodies: Vec<serde_json::Value> = self.with(|s| {
            s.vaults
                .values()
                .flat_map(|v| v.objects.values().flatten())
                .filter_map(|v| match &v.body {
                    Body::Json(value) => Some(value.clone()),
                    Body::Raw(bytes) => serde_json::from_slice(bytes).ok(),
                })
                .collect()
        });
        let mut out = vec![];
        for body in bodies {
            for field in ["value", "cer"] {
                if let Some(v) = body[field].as_str() {
                    out.push(v.to_owned());
                }
            }
            for field in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                if let Some(v) = body["key"][field].as_str() {
                    out.push(v.to_owned());
                }
            }
        }
        out
    }

    /// Queues a fault for the next request (whose path contains `path_contains`, if given).
    pub fn push_fault(&self, path_contains: Option<&str>, response: FakeResponse) {
        self.with(|s| {
            s.faults.push_back(Fault {
                path_contains: path_contains.map(str::to_owned),
                response,
            });
        });
    }

    /// Queues several faults.
    pub fn push_faults(&self, path_contains: Option<&str>, responses: Vec<FakeResponse>) {
        for r in responses {
            self.push_fault(path_contains, r);
        }
    }

    /// Version list page size (default: all in one page).
    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = Some(n.max(1)));
    }

    /// Makes list pages link to another host (to test nextLink validation).
    pub fn set_next_link_host(&self, host: &str) {
        self.with(|s| s.next_link_host = Some(host.to_owned()));
    }

    /// Delays every answer (that has no scripted delay) by `latency`, as a
    /// round trip to a distant vault would; `Duration::ZERO` turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.latency = (!latency.is_zero()).then_some(latency));
    }

    /// The route handler.
    pub fn handler(&self) -> Handler {
        let me = self.clone();
        Arc::new(move |req: &Request| me.handle(req))
    }

    fn handle(&self, req: &Request) -> FakeResponse {
        self.with(|s| {
            let mut response = if let Some(pos) = s.faults.iter().position(|f| {
                f.path_contains
                    .as_deref()
                    .is_none_or(|p| req.path.contains(p))
            }) && let Some(f) = s.faults.remove(pos)
            {
                f.response
            } else {
                answer(s, req)
            };
            if response.delay.is_none() {
                response.delay = s.latency;
            }
            response
        })
    }
}

fn challenge() -> FakeResponse {
    FakeResponse::json(401, testdata("error-unauthorized-challenge.json")).with_header(
        "www-authenticate",
        "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"https://vault.azure.net\"",
    )
}

fn answer(s: &State, req: &Request) -> FakeResponse {
    if req.method != "GET" {
        return FakeResponse::status(405);
    }
    if req.query_param("api-version").is_none() {
        return FakeResponse::json(
            400,
            json!({"error":{"code":"BadParameter","message":"The request URI contains an invalid or missing api-version"}}).to_string(),
        );
    }
    let vault_name = req.host.split('.').next().unwrap_or_default();
    let Some(vault) = s.vaults.get(vault_name) else {
        return FakeResponse::json(
            404,
            json!({"error":{"code":"VaultNotFound","message":"fake: no such vault"}}).to_string(),
        );
    };
    let Some(token) = req.bearer() else {
        return challenge();
    };
    let resource = CLOUD_VAULTS
        .iter()
        .map(|(suffix, resource)| (*suffix, *resource))
        .chain(
            s.custom_clouds
                .iter()
                .map(|(suffix, resource)| (suffix.as_str(), resource.as_str())),
        )
        .find(|(suffix, _)| req.host.ends_with(&format!(".{suffix}")))
        .map(|(_, resource)| resource);
    let Some(access) = vault
        .tokens
        .get(token)
        .filter(|(_, audience)| Some(audience.as_str()) == resource)
        .map(|(access, _)| access)
    else {
        return FakeResponse::json(
            401,
            json!({"error":{"code":"Unauthorized","message":"AKV10022: Invalid audience."}})
                .to_string(),
        )
        .with_header(
            "www-authenticate",
            "Bearer authorization=\"https://login.microsoftonline.com/t\", resource=\"https://vault.azure.net\", error=\"invalid_token\", error_description=\"The access token is invalid\"",
        );
    };

    let segments: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let (Some(kind), Some(name)) = (
        segments.first().and_then(|k| Kind::parse(k)),
        segments.get(1),
    ) else {
        return FakeResponse::status(404);
    };
    let allowed = match access {
        Access::All => true,
        Access::Only(list) => list.iter().any(|(k, n)| *k == kind && n == name),
    };
    if !allowed {
        return FakeResponse::json(
            403,
            json!({"error":{"code":"Forbidden","message":format!("The user, group or application does not have {} get permission on key vault '{vault_name}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", kind.segment()),"innererror":{"code":"AccessDenied"}}}).to_string(),
        );
    }
    let Some(versions) = vault.objects.get(&(kind, name.clone())) else {
        return FakeResponse::json(404, kind.not_found(name));
    };
    let base = format!("https://{}/{}/{name}", req.host, kind.segment());
    let sub = segments.get(2).map(String::as_str).unwrap_or("");

    if sub == "versions" && segments.len() == 3 {
        let start: usize = req
            .query_param("$skiptoken")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let size = s.page_size.unwrap_or(usize::MAX);
        let page: Vec<_> = versions.iter().skip(start).take(size).collect();
        let items: Vec<serde_json::Value> = page
            .iter()
            .map(|v| {
                let id_field = if kind == Kind::Keys { "kid" } else { "id" };
                json!({id_field: format!("{base}/{}", v.version), "attributes": {"enabled": v.enabled, "created": v.created, "updated": v.created}})
            })
            .collect();
        let next = if start.saturating_add(size) < versions.len() {
            let host = s.next_link_host.clone().unwrap_or_else(|| req.host.clone());
            json!(format!(
                "https://{host}:443/{}/{name}/versions?api-version=7.4&$skiptoken={}&maxresults={size}",
                kind.segment(),
                start + size
            ))
        } else {
            serde_json::Value::Null
        };
        return FakeResponse::json(200, json!({"value": items, "nextLink": next}).to_string());
    }

    let chosen = if sub.is_empty() {
        // Latest = most recently created enabled-or-not version (the service ignores enabled here).
        versions.iter().max_by_key(|v| v.created)
    } else {
        versions.iter().find(|v| v.version == sub)
    };
    let Some(v) = chosen else {
        return FakeResponse::json(404, kind.not_found(name));
    };
    if !v.enabled {
        return FakeResponse::json(403, testdata("error-forbidden-secret-disabled.json"));
    }
    let id = format!("{base}/{}", v.version);
    match &v.body {
        Body::Raw(bytes) => FakeResponse::json(200, bytes.clone()),
        Body::Json(value) => {
            let mut obj = value.clone();
            let attrs = json!({"enabled": v.enabled, "created": v.created, "updated": v.created});
            match kind {
                Kind::Keys => {
                    if let Some(key) = obj.get_mut("key").and_then(|k| k.as_object_mut()) {
                        key.insert("kid".into(), json!(id));
                    }
                }
                _ => {
                    obj["id"] = json!(id);
                }
            }
            obj["attributes"] = attrs;
            FakeResponse::json(200, obj.to_string())
        }
    }
}

/// A 429 with `Retry-After: <secs>` and Key Vault's throttling body.
pub fn throttled(retry_after_secs: u64) -> FakeResponse {
    FakeResponse::json(
        429,
        json!({"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}).to_string(),
    )
    .with_header("retry-after", &retry_after_secs.to_string())
}

/// A bare server error.
pub fn server_error(status: u16) -> FakeResponse {
    FakeResponse::json(
        status,
        json!({"error":{"code":"InternalError","message":"fake server error"}}).to_string(),
    )
}

/// A successful-looking response that arrives after `delay`.
pub fn slow(delay: Duration) -> FakeResponse {
    FakeResponse::json(200, "{}").with_delay(delay)
}
