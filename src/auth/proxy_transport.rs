//! The identity-binding transport: HTTPS to the AKS token proxy with a fixed TLS server name
//! (SNI) and the service-account CA as the only trust root, rebuilt when the CA file changes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{HOST, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::http_transport;
use super::token_proxy::validate_proxy_url;
use super::transport::{AuthRequest, AuthResponse, AuthTransport, TransportError};

struct Built {
    ca_digest: [u8; 32],
    client: reqwest::Client,
}

/// Sends token requests to the token proxy. Request URLs are given against the proxy URL;
/// the connection goes to the proxy host with `sni_name` as TLS server name, and the `Host`
/// header keeps the proxy's authority (as the reference's rewritten request does).
pub struct TokenProxyTransport {
    proxy_authority: String,
    proxy_host: String,
    proxy_port: u16,
    sni_name: String,
    ca_path: PathBuf,
    user_agent: String,
    current: Mutex<Option<Arc<Built>>>,
}

impl TokenProxyTransport {
    /// Validates the settings; the CA file is read on each request.
    ///
    /// # Errors
    /// A message for `proxy transport not available: …` when the URL or SNI name is unusable.
    pub fn new(
        proxy_url: &str,
        sni_name: &str,
        ca_path: impl Into<PathBuf>,
        user_agent: &str,
    ) -> Result<Self, String> {
        validate_proxy_url(proxy_url)?;
        if sni_name.is_empty() {
            return Err("no SNI name: set --sni-name".into());
        }
        let authority = proxy_url
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(port) => (h.to_owned(), port),
                Err(_) => return Err(format!("token proxy URL {proxy_url:?} has an invalid port")),
            },
            _ => (authority.clone(), 443),
        };
        Ok(Self {
            proxy_authority: authority,
            proxy_host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            proxy_port: port,
            sni_name: sni_name.to_owned(),
            ca_path: ca_path.into(),
            user_agent: user_agent.to_owned(),
            current: Mutex::new(None),
        })
    }

    /// The client for the CA file's current content. An empty or unreadable file keeps the
    /// previous client (CA rotation writes the file in place).
    async fn client(&self) -> Result<reqwest::Client, TransportError> {
        let previous = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let bytes = match tokio::fs::read(&self.ca_path).await {
            Ok(b) if !b.is_empty() => b,
            Ok(_) | Err(_) if previous.is_some() => {
                return previous
                    .map(|b| b.client.clone())
                    .ok_or_else(|| TransportError::Other("no CA".into()));
            }
            Ok(_) => {
                return Err(TransportError::Connect(format!(
                    "CA file {} is empty",
                    self.ca_path.display()
                )));
            }
            Err(e) => {
                return Err(TransportError::Connect(format!(
                    "cannot read CA file {}: {e}",
                    self.ca_path.display()
                )));
            }
        };
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(p) = &previous
            && p.ca_digest == digest
        {
            return Ok(p.client.clone());
        }
        let client = self.build(&bytes)?;
        let built = Arc::new(Built {
            ca_digest: digest,
            client: client.clone(),
        });
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(built);
        Ok(client)
    }

    fn build(&self, ca_pem: &[u8]) -> Result<reqwest::Client, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|_| {
                TransportError::Connect(format!(
                    "CA file {} is not valid PEM",
                    self.ca_path.display()
                ))
            })?;
            roots.add(cert).map_err(|_| {
                TransportError::Connect(format!(
                    "CA file {} holds an invalid certificate",
                    self.ca_path.display()
                ))
            })?;
        }
        if roots.is_empty() {
            return Err(TransportError::Connect(format!(
                "CA file {} holds no certificate",
                self.ca_path.display()
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Other(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(self.user_agent.as_str())
            // The proxy is the cluster's API server address: never through an egress proxy.
            .no_proxy()
            .dns_resolver(Arc::new(ProxyResolver {
                host: self.proxy_host.clone(),
                port: self.proxy_port,
            }))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TransportError::Other(format!("cannot build the token proxy client: {e}")))
    }
}

/// Resolves the SNI name (used as URL host so rustls sends it) to the proxy's addresses.
struct ProxyResolver {
    host: String,
    port: u16,
}

impl reqwest::dns::Resolve for ProxyResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

impl AuthTransport for TokenProxyTransport {
    fn send(
        &self,
        mut request: AuthRequest,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<AuthResponse, TransportError>> {
        Box::pin(async move {
            let client = self.client().await?;
            // https://<proxy authority>/path -> https://<sni>:<port>/path; Host stays the proxy's.
            let prefix = format!("https://{}", self.proxy_authority);
            let Some(path) = request.url.strip_prefix(&prefix) else {
                return Err(TransportError::Other(
                    "token request URL is not under the token proxy URL".into(),
                ));
            };
            request.url = format!("https://{}:{}{path}", self.sni_name, self.proxy_port);
            let host = HeaderValue::from_str(&self.proxy_authority)
                .map_err(|_| TransportError::Other("invalid token proxy host".into()))?;
            http_transport::send_with_host(&client, request, timeout, Some((HOST, host))).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authority() {
        let t = TokenProxyTransport::new(
            "https://kubernetes.default.svc.cluster.local",
            "a.ests.aks",
            "/nonexistent",
            "ua",
        )
        .unwrap();
        assert_eq!(t.proxy_host, "kubernetes.default.svc.cluster.local");
        assert_eq!(t.proxy_port, 443);
        let t =
            TokenProxyTransport::new("https://127.0.0.1:8443/", "a.ests.aks", "/x", "ua").unwrap();
        assert_eq!((t.proxy_host.as_str(), t.proxy_port), ("127.0.0.1", 8443));
        assert!(TokenProxyTransport::new("https://h", "", "/x", "ua").is_err());
        assert!(TokenProxyTransport::new("http://h", "s", "/x", "ua").is_err());
    }

    #[tokio::test]
    async fn missing_ca_is_a_connect_error() {
        let t = TokenProxyTransport::new("https://h", "s", "/nonexistent/ca.crt", "ua").unwrap();
        let e = t.client().await.unwrap_err();
        assert!(matches!(e, TransportError::Connect(m) if m.contains("/nonexistent/ca.crt")));
    }
}
