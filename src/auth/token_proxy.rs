//! Identity binding (`useAzureTokenProxy`): the token-proxy settings, URL validation and the
//! SNI name derivation of azure-behaviour.md §5.6.

use std::fmt;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};

use super::proxy_transport::TokenProxyTransport;
use super::sni_discovery::{self, DiscoveryTarget};
use super::transport::AuthTransport;

/// Default `--token-proxy-url`.
pub const DEFAULT_TOKEN_PROXY_URL: &str = "https://kubernetes.default.svc.cluster.local";

/// Trust root of the token proxy (re-read when it changes).
pub const SERVICE_ACCOUNT_CA_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// The audience of the service-account token used as the assertion.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// Where identity-binding token requests go, and the transport that reaches it (with the
/// SNI name and CA file applied), or why that transport could not be built. A failure is
/// reported only when a Mount uses this mode.
#[derive(Clone)]
pub struct TokenProxy {
    /// Proxy base URL (validated by [`validate_proxy_url`]).
    pub url: String,
    /// TLS server name presented to the proxy.
    pub sni_name: String,
    /// The transport, or the reason it is unavailable.
    pub transport: Result<Arc<dyn AuthTransport>, String>,
}

impl fmt::Debug for TokenProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProxy")
            .field("url", &self.url)
            .field("sni_name", &self.sni_name)
            .field("transport", &self.transport.as_ref().map(|_| "ready"))
            .finish()
    }
}

/// The token proxy as the process starts: known at once, or once the background SNI name
/// discovery (an empty `--sni-name`) has ended. Only identity-binding Mounts wait for it.
#[derive(Clone)]
pub enum TokenProxySetup {
    /// Settled at start-up (`--sni-name` given, or a settings error).
    Ready(TokenProxy),
    /// SNI name discovery still running; resolves to the proxy, with the failure stored.
    Discovering(Shared<BoxFuture<'static, TokenProxy>>),
}

impl From<TokenProxy> for TokenProxySetup {
    fn from(proxy: TokenProxy) -> Self {
        Self::Ready(proxy)
    }
}

impl fmt::Debug for TokenProxySetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(p) => p.fmt(f),
            None => f.write_str("TokenProxy(discovering the SNI name)"),
        }
    }
}

impl TokenProxySetup {
    /// The transport to `url` with TLS server name `sni_name`, trusting `discovery.ca_path`.
    /// An empty `sni_name` starts discovery against `discovery` in the background (on the
    /// current tokio runtime, if any; otherwise on first use).
    pub fn start(url: &str, sni_name: &str, user_agent: &str, discovery: DiscoveryTarget) -> Self {
        let ca_path = discovery.ca_path.clone();
        let proxy_url = url.to_owned();
        let user_agent = user_agent.to_owned();
        let build = move |sni_name: String| {
            let transport = TokenProxyTransport::new(&proxy_url, &sni_name, &ca_path, &user_agent)
                .map(|t| Arc::new(t) as Arc<dyn AuthTransport>);
            TokenProxy {
                url: proxy_url,
                sni_name,
                transport,
            }
        };
        // A bad URL is reported as such; discovering an SNI name for it would be pointless.
        if !sni_name.is_empty() || validate_proxy_url(url).is_err() {
            return Self::Ready(build(sni_name.to_owned()));
        }
        let pending = async move {
            match sni_discovery::discover_sni_name(&discovery).await {
                Ok(sni_name) => {
                    tracing::info!(sni_name = %sni_name, "identity binding: SNI name computed");
                    build(sni_name)
                }
                Err(e) => {
                    // Expected outside AKS; only identity-binding Mounts report it.
                    tracing::info!(error = %e, "identity binding unavailable");
                    let mut proxy = build(String::new());
                    proxy.transport = Err(e.to_string());
                    proxy
                }
            }
        }
        .boxed()
        .shared();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(pending.clone()));
        }
        Self::Discovering(pending)
    }

    /// The proxy, if settled.
    pub fn get(&self) -> Option<&TokenProxy> {
        match self {
            Self::Ready(p) => Some(p),
            Self::Discovering(pending) => pending.peek(),
        }
    }

    /// Waits until the proxy is settled (discovery is bounded by its own timeout).
    pub async fn settled(&self) -> Option<&TokenProxy> {
        if let Self::Discovering(pending) = self {
            pending.clone().await;
        }
        self.get()
    }
}

/// The proxy URL must be https without query, fragment or userinfo (§5.6).
///
/// # Errors
/// A message naming the problem.
pub fn validate_proxy_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!("token proxy URL {url:?} must use https"));
    };
    if url.contains('?') || url.contains('#') {
        return Err(format!(
            "token proxy URL {url:?} must not contain a query or fragment"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "token proxy URL {url:?} must not contain user info"
        ));
    }
    if authority.is_empty() {
        return Err(format!("token proxy URL {url:?} has no host"));
    }
    Ok(())
}

/// The cluster id from a DNS SAN `hcp-kubernetes.<clusterID>.svc.cluster.local` of the
/// API server's leaf certificate.
pub fn cluster_id_from_dns_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().find_map(|n| {
        n.strip_prefix("hcp-kubernetes.")?
            .strip_suffix(".svc.cluster.local")
            .filter(|id| !id.is_empty() && !id.contains('.'))
    })
}

/// SNI = lowercase("a" + base32hex-no-padding(SHA-256("identity-binding" + clusterID)) + ".ests.aks").
pub fn sni_name_for_cluster(cluster_id: &str) -> String {
    let digest = Sha256::digest(format!("identity-binding{cluster_id}").as_bytes());
    format!("a{}.ests.aks", base32hex_lower_nopad(&digest))
}

fn base32hex_lower_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_derivation_matches_known_values() {
        // Expected values computed independently (Python: hashlib + base64.b32hexencode).
        assert_eq!(
            sni_name_for_cluster("abc123"),
            "avogudkohgdatdl5h3uisa3it85na3oqte6ir8heubtqsv4hgo1qg.ests.aks"
        );
        assert_eq!(
            sni_name_for_cluster("0123456789abcdef01234567"),
            "adjohu9u1dlsmhjkfb9rc27r2rl3iuv7jlrjrafk5ic3sov52hu8g.ests.aks"
        );
    }

    #[test]
    fn base32hex_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex_lower_nopad(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn cluster_id_from_san() {
        let names = [
            "kubernetes",
            "kubernetes.default.svc.cluster.local",
            "hcp-kubernetes.65f1a2b3c4.svc.cluster.local",
        ];
        assert_eq!(cluster_id_from_dns_names(names), Some("65f1a2b3c4"));
        assert_eq!(cluster_id_from_dns_names(["kubernetes"]), None);
    }

    #[test]
    fn proxy_url_validation() {
        assert!(validate_proxy_url(DEFAULT_TOKEN_PROXY_URL).is_ok());
        assert!(validate_proxy_url("https://h:8443/base").is_ok());
        assert!(validate_proxy_url("http://h").is_err());
        assert!(validate_proxy_url("https://h/?q=1").is_err());
        assert!(validate_proxy_url("https://h/#f").is_err());
        assert!(validate_proxy_url("https://u:p@h/").is_err());
        assert!(validate_proxy_url("https:///x").is_err());
    }
}
