//! Fake identity endpoints on a [`FakeAzure`]: Entra ID's token endpoint (service principal and
//! workload identity), IMDS and aad-pod-identity NMI. Every token they issue is unique and is
//! granted in the fake Key Vault; they count requests and remember every credential they saw or
//! issued (for secret-hygiene assertions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::fake_azure::{FakeAzure, FakeResponse, Request};
use super::fake_keyvault::{Access, FakeKeyVault};

/// Entra ID host of the public cloud.
pub const ENTRA_HOST: &str = "login.microsoftonline.com";
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
}

#[derive(Default)]
struct State {
    issued: Vec<Issued>,
    requests: HashMap<Source, Vec<Request>>,
    grants: Vec<(String, Access)>,
    client_secrets: HashMap<String, String>,
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
        let m = me.clone();
        fake.route_fn(ENTRA_HOST, move |r| m.entra(r));
        let m = me.clone();
        fake.route_fn(IMDS_HOST, move |r| m.imds(r));
        let m = me.clone();
        fake.route_fn(NMI_HOST, move |r| m.nmi(r));
        me
    }

    /// Also answers as Entra ID's token endpoint on `host` (e.g. the AKS token proxy of identity
    /// binding, which relays token requests to Entra ID); requests count as [`Source::Entra`].
    pub fn serve_entra_at(&self, fake: &FakeAzure, host: &str) {
        let m = self.clone();
        fake.route_fn(host, move |r| m.entra(r));
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("identity lock"))
    }

    /// Every token issued so far, and every future one, gets `access` on `vault`.
    pub fn grant_vault(&self, vault: &str, access: Access) {
        let tokens: Vec<String> = self.with(|s| {
            s.grants.push((vault.to_owned(), access.clone()));
            s.issued.iter().map(|i| i.access_token.clone()).collect()
        });
        self.keyvault.add_vault(vault);
        for t in tokens {
            self.keyvault.grant(vault, &t, access.clone());
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

    fn issue(&self, source: Source, subject: String) -> String {
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
            });
            s.grants.clone()
        });
        for (vault, access) in grants {
            self.keyvault.grant(&vault, &token, access);
        }
        token
    }

    fn entra(&self, req: &Request) -> FakeResponse {
        self.record(Source::Entra, req);
        if req.method != "POST" || !req.path.ends_with("/oauth2/v2.0/token") {
            return FakeResponse::json(404, r#"{"error":"not_found"}"#);
        }
        let form: HashMap<String, String> = req.form().into_iter().collect();
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        if let Some(assertion) = form.get("client_assertion") {
            self.with(|s| s.credentials_seen.push(assertion.clone()));
            let token = self.issue(Source::Entra, format!("wi:{client_id}:{assertion}"));
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
        let token = self.issue(Source::Entra, format!("sp:{client_id}"));
        entra_ok(&token)
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
        let token = self.issue(Source::Imds, subject);
        FakeResponse::json(
            200,
            json!({"access_token": token, "client_id": "imds-client", "expires_in": "86399",
                "expires_on": "4102444800", "ext_expires_in": "86399", "not_before": "1",
                "resource": "https://vault.azure.net", "token_type": "Bearer"})
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
            };
        };
        let token = self.issue(Source::Nmi, format!("pod {ns}/{name}"));
        FakeResponse::json(
            200,
            json!({"token": {"access_token": token, "refresh_token": "", "expires_in": "3599",
                "expires_on": "4102444800", "not_before": "1",
                "resource": "https://vault.azure.net", "token_type": "Bearer"},
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
