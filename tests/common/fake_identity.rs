//! Fake identity endpoints on a [`FakeAzure`]: Entra ID's token endpoint (service principal and
//! workload identity) of every built-in cloud, IMDS and aad-pod-identity NMI. Every token they
//! issue is unique, is issued for one Key Vault resource only and is granted in the fake Key Vault
//! for that resource only; they count requests and remember every credential they saw or issued
//! (for secret-hygiene assertions).
//!
//! Like the real services they refuse what they do not know: Entra ID an unknown tenant, a scope
//! other than its own cloud's `<Key Vault resource>/.default`, an unregistered client secret or
//! client assertion; IMDS and NMI a `resource` that is no cloud's Key Vault resource.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::fake_azure::{FakeAzure, FakeResponse, Request};
use super::fake_keyvault::{Access, FakeKeyVault};

/// Entra ID host of the public cloud.
pub const ENTRA_HOST: &str = "login.microsoftonline.com";
/// The tenant Entra ID knows unless a test registers others ([`FakeIdentity::allow_tenant`]).
pub const DEFAULT_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Entra ID host of every built-in cloud and the Key Vault resource it issues tokens for.
pub const CLOUD_AUTHORITIES: [(&str, &str); 4] = [
    (ENTRA_HOST, "https://vault.azure.net"),
    (
        "login.microsoftonline.us",
        "https://vault.usgovcloudapi.net",
    ),
    ("login.chinacloudapi.cn", "https://vault.azure.cn"),
    (
        "login.microsoftonline.de",
        "https://vault.microsoftazure.de",
    ),
];
/// IMDS host.
pub const IMDS_HOST: &str = "169.254.169.254";
/// NMI host (the provider calls `http://localhost:2579`).
pub const NMI_HOST: &str = "localhost";

/// The Entra ID answer to a wrong client secret (status 401).
pub const AADSTS7000215: &str = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-000000000000'.\r\nTrace ID: 0a5c\r\nCorrelation ID: 1b6d\r\nTimestamp: 2024-01-01 00:00:00Z","error_codes":[7000215]}"#;

/// Which fake answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Entra ID token endpoint.
    Entra,
    /// Instance Metadata Service.
    Imds,
    /// aad-pod-identity Node Managed Identity.
    Nmi,
}

/// One issued access token.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Who issued it.
    pub source: Source,
    /// Whom it was issued to (client id, `system`, `pod <ns>/<name>`, ...).
    pub subject: String,
    /// The access token.
    pub access_token: String,
    /// The Key Vault resource it is valid for.
    pub resource: String,
}

#[derive(Default)]
struct State {
    issued: Vec<Issued>,
    requests: HashMap<Source, Vec<Request>>,
    grants: Vec<(String, Access)>,
    client_secrets: HashMap<String, String>,
    /// (client id, service-account token) pairs with a federated credential.
    assertions: HashSet<(String, String)>,
    tenants: HashSet<String>,
    /// Entra ID host -> Key Vault resource it issues tokens for.
    authorities: HashMap<String, String>,
    nmi_pods: HashMap<(String, String), String>,
    credentials_seen: Vec<String>,
}

/// The identity fakes (cheap clone).
#[derive(Clone)]
pub struct FakeIdentity {
    state: Arc<Mutex<State>>,
    keyvault: FakeKeyVault,
}

impl FakeIdentity {
    /// Registers Entra ID, IMDS and NMI routes on `fake`.
    pub fn install(fake: &FakeAzure) -> Self {
        let me = Self {
            state: Arc::default(),
            keyvault: fake.keyvault.clone(),
        };
        me.allow_tenant(DEFAULT_TENANT);
        for (host, resource) in CLOUD_AUTHORITIES {
            me.add_authority(fake, host, resource);
        }
        let m = me.clone();
        fake.route_fn(IMDS_HOST, move |r| m.imds(r));
        let m = me.clone();
        fake.route_fn(NMI_HOST, move |r| m.nmi(r));
        me
    }

    /// Also answers as Entra ID's token endpoint on `host` (e.g. the AKS token proxy of identity
    /// binding, which relays token requests to Entra ID); requests count as [`Source::Entra`].
    pub fn serve_entra_at(&self, fake: &FakeAzure, host: &str) {
        self.add_authority(fake, host, CLOUD_AUTHORITIES[0].1);
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("identity lock"))
    }

    /// Serves Entra ID on `host`, issuing tokens for `resource` only.
    fn add_authority(&self, fake: &FakeAzure, host: &str, resource: &str) {
        self.with(|s| {
            s.authorities
                .insert(host.to_ascii_lowercase(), resource.to_owned())
        });
        let m = self.clone();
        fake.route_fn(host, move |r| m.entra(r));
    }

    /// Adds a custom (Azure Stack) cloud: Entra ID on `entra_host` issuing tokens for `resource`,
    /// and the fake Key Vault on `*.<vault_dns_suffix>` accepting only those. The host names must
    /// be in the fake's certificate ([`FakeAzure::start_with_hosts`]).
    pub fn add_cloud(
        &self,
        fake: &FakeAzure,
        entra_host: &str,
        resource: &str,
        vault_dns_suffix: &str,
    ) {
        self.add_authority(fake, entra_host, resource);
        self.keyvault.add_cloud(vault_dns_suffix, resource);
        fake.route(&format!("*.{vault_dns_suffix}"), self.keyvault.handler());
    }

    /// Makes Entra ID know `tenant` (others get AADSTS90002).
    pub fn allow_tenant(&self, tenant: &str) {
        self.with(|s| s.tenants.insert(tenant.to_owned()));
    }

    /// Registers a federated credential: `client_id` accepts the service-account token
    /// `assertion` as its client assertion (others get AADSTS700213).
    pub fn allow_assertion(&self, client_id: &str, assertion: &str) {
        self.with(|s| {
            s.assertions
                .insert((client_id.to_owned(), assertion.to_owned()))
        });
    }

    fn known_resource(&self, resource: &str) -> bool {
        self.with(|s| s.authorities.values().any(|r| r == resource))
    }

    /// Every token issued so far, and every future one, gets `access` on `vault`.
    pub fn grant_vault(&self, vault: &str, access: Access) {
        let tokens: Vec<(String, String)> = self.with(|s| {
            s.grants.push((vault.to_owned(), access.clone()));
            s.issued
                .iter()
                .map(|i| (i.access_token.clone(), i.resource.clone()))
                .collect()
        });
        self.keyvault.add_vault(vault);
        for (t, resource) in tokens {
            self.keyvault
                .grant_for(vault, &t, access.clone(), &resource);
        }
    }

    /// Registers an application (service principal) and its valid client secret; other secrets
    /// (and unregistered applications) get AADSTS7000215.
    pub fn allow_client_secret(&self, client_id: &str, secret: &str) {
        self.with(|s| {
            s.client_secrets
                .insert(client_id.to_owned(), secret.to_owned());
        });
    }

    /// Makes NMI answer for pod `namespace/name` with the identity `client_id`.
    pub fn nmi_pod(&self, namespace: &str, name: &str, client_id: &str) {
        self.with(|s| {
            s.nmi_pods.insert(
                (namespace.to_owned(), name.to_owned()),
                client_id.to_owned(),
            );
        });
    }

    /// Requests one fake received.
    pub fn requests(&self, source: Source) -> Vec<Request> {
        self.with(|s| s.requests.get(&source).cloned().unwrap_or_default())
    }

    /// Number of requests one fake received.
    pub fn count(&self, source: Source) -> usize {
        self.requests(source).len()
    }

    /// Number of token requests over all fakes.
    pub fn total(&self) -> usize {
        self.with(|s| s.requests.values().map(Vec::len).sum())
    }

    /// Every token issued.
    pub fn issued(&self) -> Vec<Issued> {
        self.with(|s| s.issued.clone())
    }

    /// Every access token issued plus every client secret and assertion received: strings that
    /// must never show up in logs or error messages.
    pub fn sensitive_strings(&self) -> Vec<String> {
        self.with(|s| {
            s.issued
                .iter()
                .map(|i| i.access_token.clone())
                .chain(s.credentials_seen.iter().cloned())
                .chain(s.client_secrets.values().cloned())
                .collect()
        })
    }

    fn record(&self, source: Source, req: &Request) {
        self.with(|s| s.requests.entry(source).or_default().push(req.clone()));
    }

    fn issue(&self, source: Source, subject: String, resource: &str) -> String {
        let tag = match source {
            Source::Entra => "entra",
            Source::Imds => "imds",
            Source::Nmi => "nmi",
        };
        let token = format!(
            "eyJ0eXAiOiJKV1QifQ.fake-{tag}-{:016x}.c2ln",
            rand::random::<u64>()
        );
        let grants = self.with(|s| {
            s.issued.push(Issued {
                source,
                subject,
                access_token: token.clone(),
                resource: resource.to_owned(),
            });
            s.grants.clone()
        });
        for (vault, access) in grants {
            self.keyvault.grant_for(&vault, &token, access, resource);
        }
        token
    }

    fn entra(&self, req: &Request) -> FakeResponse {
        self.record(Source::Entra, req);
        let tenant = req
            .path
            .strip_suffix("/oauth2/v2.0/token")
            .and_then(|t| t.strip_prefix('/'));
        let (Some(tenant), "POST") = (tenant, req.method.as_str()) else {
            return FakeResponse::json(404, r#"{"error":"not_found"}"#);
        };
        if !self.with(|s| s.tenants.contains(tenant)) {
            return FakeResponse::json(
                400,
                json!({"error": "invalid_request", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")}).to_string(),
            );
        }
        let form: HashMap<String, String> = req.form().into_iter().collect();
        let Some(resource) = self.with(|s| s.authorities.get(&req.host).cloned()) else {
            return FakeResponse::json(404, r#"{"error":"not_found"}"#);
        };
        let scope = form.get("scope").cloned().unwrap_or_default();
        if scope != format!("{resource}/.default") {
            return FakeResponse::json(
                400,
                json!({"error": "invalid_scope", "error_description": format!("AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.")}).to_string(),
            );
        }
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        if let Some(assertion) = form.get("client_assertion") {
            let known = self.with(|s| {
                s.credentials_seen.push(assertion.clone());
                s.assertions
                    .contains(&(client_id.clone(), assertion.clone()))
            });
            if !known {
                return FakeResponse::json(
                    400,
                    r#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject.","error_codes":[700213]}"#,
                );
            }
            let token = self.issue(
                Source::Entra,
                format!("wi:{client_id}:{assertion}"),
                &resource,
            );
            return entra_ok(&token);
        }
        let Some(secret) = form.get("client_secret") else {
            return FakeResponse::json(
                400,
                r#"{"error":"invalid_request","error_description":"AADSTS900144: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}"#,
            );
        };
        let valid = self.with(|s| {
            s.credentials_seen.push(secret.clone());
            s.client_secrets.get(&client_id) == Some(secret)
        });
        if !valid {
            return FakeResponse::json(401, AADSTS7000215);
        }
        let token = self.issue(Source::Entra, format!("sp:{client_id}"), &resource);
        entra_ok(&token)
    }

    /// The decoded `resource` query parameter when it is a known cloud's Key Vault resource.
    fn requested_resource(&self, req: &Request) -> Result<String, FakeResponse> {
        let raw = req.query_param("resource").unwrap_or_default();
        let resource = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        if self.known_resource(&resource) {
            Ok(resource)
        } else {
            Err(FakeResponse::json(
                400,
                json!({"error": "invalid_resource", "error_description": format!("AADSTS500011: The resource principal named {resource} was not found in the tenant.")}).to_string(),
            ))
        }
    }

    fn imds(&self, req: &Request) -> FakeResponse {
        self.record(Source::Imds, req);
        if req.header("metadata") != Some("true") {
            return FakeResponse::json(
                400,
                r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#,
            );
        }
        let subject = match (req.query_param("client_id"), req.query_param("msi_res_id")) {
            (Some(c), _) => format!("client_id:{c}"),
            (None, Some(r)) => format!("msi_res_id:{r}"),
            (None, None) => "system".to_owned(),
        };
        let resource = match self.requested_resource(req) {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
        let token = self.issue(Source::Imds, subject, &resource);
        FakeResponse::json(
            200,
            json!({"access_token": token, "client_id": "imds-client", "expires_in": "86399",
                "expires_on": "4102444800", "ext_expires_in": "86399", "not_before": "1",
                "resource": resource, "token_type": "Bearer"})
            .to_string(),
        )
    }

    fn nmi(&self, req: &Request) -> FakeResponse {
        self.record(Source::Nmi, req);
        let ns = req.header("podns").unwrap_or_default().to_owned();
        let name = req.header("podname").unwrap_or_default().to_owned();
        let client = self.with(|s| s.nmi_pods.get(&(ns.clone(), name.clone())).cloned());
        let Some(client_id) = client else {
            return FakeResponse {
                status: 403,
                headers: vec![],
                body: format!("no AzureIdentity found for pod:{ns}/{name} in assigned state")
                    .into_bytes(),
                delay: None,
                reset: false,
                hold: None,
            };
        };
        let resource = match self.requested_resource(req) {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
        let token = self.issue(Source::Nmi, format!("pod {ns}/{name}"), &resource);
        FakeResponse::json(
            200,
            json!({"token": {"access_token": token, "refresh_token": "", "expires_in": "3599",
                "expires_on": "4102444800", "not_before": "1",
                "resource": resource, "token_type": "Bearer"},
                "clientid": client_id})
            .to_string(),
        )
    }
}

fn entra_ok(token: &str) -> FakeResponse {
    FakeResponse::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
            "access_token": token})
        .to_string(),
    )
}
