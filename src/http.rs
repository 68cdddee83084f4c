//! The shared outbound HTTPS client: TLS trust (system roots plus `--ca-bundle`), proxies,
//! User-Agent, timeouts and connection pooling for every call to Entra ID, IMDS, NMI and Key Vault.
//!
//! # TLS backend choice
//!
//! reqwest 0.13's `default-tls` feature selects rustls with the `aws-lc-rs` crypto provider, which
//! needs a C/assembly build (cmake, NASM on some targets) and makes static musl builds heavier. We
//! build reqwest with `default-features = false` and `rustls-no-provider`, and hand it a fully
//! built [`rustls::ClientConfig`] using the pure-Rust-plus-asm `ring` provider
//! (`tls_backend_preconfigured`). That also means no process-global
//! `CryptoProvider::install_default` call is needed. OpenSSL/native-tls is never linked.
//!
//! `rustls-no-provider` still compiles `rustls-platform-verifier` (a reqwest dependency of that
//! feature), but it is not used: our `ClientConfig` verifies with rustls' WebPKI verifier over a
//! root store built from the system trust store (`rustls-native-certs`, which honours
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus the PEM certificates of `--ca-bundle`.
//!
//! Only HTTP/1.1 is negotiated (ALPN `http/1.1`): Key Vault and Entra ID serve it fine, and
//! dropping h2 keeps the build smaller.
//!
//! # Proxies
//!
//! Unless [`HttpConfig::proxy_override`] is set, the proxy comes from `HTTPS_PROXY`/`https_proxy`
//! (https URLs), `HTTP_PROXY`/`http_proxy` (http URLs), `ALL_PROXY`/`all_proxy` (either, when the
//! scheme's own variable is unset) and `NO_PROXY`/`no_proxy`, read once when the client is built.
//! The environment is only read, never changed.
//!
//! Loopback destinations never use a proxy, whatever `NO_PROXY` says, as Go's
//! `http.ProxyFromEnvironment` (the reference's client) decides: the host `localhost` and literal
//! loopback addresses (`127.0.0.0/8`, `::1`, IPv4-mapped `::ffff:127.0.0.0/104`). A proxy's
//! loopback is not ours, so NMI at `localhost:2579` could never be reached through one. Names are
//! not resolved for this decision (Go does not either): `foo.localhost` or a name that resolves to
//! `127.0.0.1` is proxied unless `NO_PROXY` lists it. The same rule applies to `--outbound-proxy`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, InvalidHeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::ErrorClass;
use crate::secret::SecretString;

/// Product token at the start of every User-Agent.
pub const USER_AGENT_PRODUCT: &str = concat!("rust-azure-provider/", env!("CARGO_PKG_VERSION"));

/// Default time allowed to establish a TCP + TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for one HTTP attempt (request sent to body read).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the outbound client.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// PEM file with extra trusted CA certificates, added to the system roots
    /// (corporate TLS-inspecting proxies, Azure Stack Hub).
    pub ca_bundle: Option<PathBuf>,
    /// Appended to the User-Agent after `rust-azure-provider/<version>` (empty: nothing).
    pub user_agent_suffix: String,
    /// Time allowed to connect (TCP + TLS, including a proxy CONNECT).
    pub connect_timeout: Duration,
    /// Time allowed for one attempt; callers also bound attempts by their own deadline.
    pub request_timeout: Duration,
    /// Explicit proxy URL for all schemes; takes precedence over `HTTPS_PROXY`/`HTTP_PROXY`.
    /// Hosts in [`HttpConfig::no_proxy`] (or, when that is `None`, in `NO_PROXY`) bypass it.
    pub proxy_override: Option<String>,
    /// Explicit no-proxy list (`NO_PROXY` syntax) used with `proxy_override`; `None` reads
    /// `NO_PROXY`/`no_proxy` from the environment.
    pub no_proxy: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            user_agent_suffix: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            proxy_override: None,
            no_proxy: None,
        }
    }
}

/// Failure to build the outbound client (reported at start-up).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The CA bundle file cannot be read.
    #[error("cannot read CA bundle {path}: {source}. Check --ca-bundle")]
    CaBundleUnreadable {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle file has PEM syntax errors or a certificate that cannot be used as a root.
    /// The file content is never echoed.
    #[error("CA bundle {path} is not a valid PEM certificate file. Check --ca-bundle")]
    CaBundleInvalid {
        /// The configured path.
        path: PathBuf,
    },
    /// The CA bundle contains no `CERTIFICATE` block.
    #[error("CA bundle {path} contains no PEM CERTIFICATE blocks. Check --ca-bundle")]
    CaBundleEmpty {
        /// The configured path.
        path: PathBuf,
    },
    /// Neither the system trust store nor `--ca-bundle` gave a usable root certificate.
    #[error(
        "no trusted CA certificates: the system trust store is empty or unreadable and no --ca-bundle was given"
    )]
    NoTrustedRoots,
    /// The explicit proxy URL is invalid (the URL is not echoed: it may hold credentials).
    #[error("the configured proxy URL is invalid")]
    InvalidProxy(#[source] reqwest::Error),
    /// The user-agent suffix is not a valid header value.
    #[error("the User-Agent suffix is not a valid HTTP header value")]
    InvalidUserAgent(#[source] InvalidHeaderValue),
    /// TLS configuration failed.
    #[error("TLS configuration failed: {0}")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

impl HttpError {
    /// The error class (start-up configuration problems are preconditions).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Tls(_) | Self::Build(_) => ErrorClass::Internal,
            _ => ErrorClass::FailedPrecondition,
        }
    }

    /// A bounded snake_case code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CaBundleUnreadable { .. } => "ca_bundle_unreadable",
            Self::CaBundleInvalid { .. } => "ca_bundle_invalid",
            Self::CaBundleEmpty { .. } => "ca_bundle_empty",
            Self::NoTrustedRoots => "no_trusted_roots",
            Self::InvalidProxy(_) => "invalid_proxy",
            Self::InvalidUserAgent(_) => "invalid_user_agent",
            Self::Tls(_) => "tls_config",
            Self::Build(_) => "http_client_build",
        }
    }
}

/// The outbound client: cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    user_agent: Arc<str>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Builds the client from `config`.
    ///
    /// # Errors
    ///
    /// [`HttpError`] when the CA bundle is unreadable, invalid or empty, when no root certificate
    /// is available at all, or when the proxy URL or User-Agent suffix is invalid.
    pub fn new(config: &HttpConfig) -> Result<Self, HttpError> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable individual system certificates are tolerated (distro stores contain odd
        // entries); an empty result is only fatal when no bundle fills the gap.
        let native = rustls_native_certs::load_native_certs();
        let _ = roots.add_parsable_certificates(native.certs);
        if let Some(path) = &config.ca_bundle {
            for cert in read_ca_bundle(path)? {
                roots
                    .add(cert)
                    .map_err(|_| HttpError::CaBundleInvalid { path: path.clone() })?;
            }
        }
        if roots.is_empty() {
            return Err(HttpError::NoTrustedRoots);
        }

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(HttpError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];

        let user_agent = user_agent(&config.user_agent_suffix);
        let ua_header = HeaderValue::from_str(&user_agent).map_err(HttpError::InvalidUserAgent)?;

        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(ua_header)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // Key Vault never redirects; following one could carry the bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        // reqwest's own environment proxy would send loopback through the proxy: replace it.
        builder = builder.no_proxy();
        let env = |name: &str| std::env::var(name).ok();
        if let Some(rules) = ProxyRules::new(config, env)? {
            builder = builder.proxy(reqwest::Proxy::custom(move |url| rules.proxy_for(url)));
        }
        let inner = builder.build().map_err(HttpError::Build)?;
        Ok(Self {
            inner,
            user_agent: user_agent.into(),
        })
    }

    /// The underlying reqwest client (shares this client's pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.inner
    }

    /// The User-Agent sent with every request.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
}

/// Which proxy, if any, each outbound URL uses (see the module docs).
struct ProxyRules {
    /// For `http://` URLs.
    http: Option<reqwest::Url>,
    /// For `https://` URLs.
    https: Option<reqwest::Url>,
    /// Decides `NO_PROXY`: intercepts exactly the destinations the list does not exempt.
    no_proxy: hyper_util::client::proxy::matcher::Matcher,
}

impl fmt::Debug for ProxyRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Proxy URLs may carry credentials.
        f.debug_struct("ProxyRules")
            .field("http", &self.http.is_some())
            .field("https", &self.https.is_some())
            .finish_non_exhaustive()
    }
}

/// The first of `names` that is set (an empty value counts as set, as in curl and Go).
fn first_env(env: &impl Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env(n))
}

/// A proxy URL from the environment; a bare `host:port` means `http://host:port`.
fn parse_env_proxy(value: Option<String>) -> Option<reqwest::Url> {
    let value = value?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let url = if value.contains("://") {
        reqwest::Url::parse(value).ok()?
    } else {
        reqwest::Url::parse(&format!("http://{value}")).ok()?
    };
    url.host_str().is_some().then_some(url)
}

impl ProxyRules {
    /// The rules for `config`, reading variables through `env`; `None` when nothing is proxied.
    fn new(
        config: &HttpConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, HttpError> {
        let (http, https, no_proxy) = match &config.proxy_override {
            Some(url) => {
                // Validates the URL (never echoed) the way reqwest will use it.
                reqwest::Proxy::all(url.as_str()).map_err(HttpError::InvalidProxy)?;
                let parsed = parse_env_proxy(Some(url.clone()));
                let no_proxy = match &config.no_proxy {
                    Some(list) => Some(list.clone()),
                    None => first_env(&env, &["NO_PROXY", "no_proxy"]),
                };
                (parsed.clone(), parsed, no_proxy)
            }
            None => {
                let all = parse_env_proxy(first_env(&env, &["ALL_PROXY", "all_proxy"]));
                let http = parse_env_proxy(first_env(&env, &["HTTP_PROXY", "http_proxy"]))
                    .or_else(|| all.clone());
                let https =
                    parse_env_proxy(first_env(&env, &["HTTPS_PROXY", "https_proxy"])).or(all);
                (http, https, first_env(&env, &["NO_PROXY", "no_proxy"]))
            }
        };
        if http.is_none() && https.is_none() {
            return Ok(None);
        }
        let no_proxy = hyper_util::client::proxy::matcher::Matcher::builder()
            .all("http://proxy.invalid".to_owned())
            .no(no_proxy.unwrap_or_default())
            .build();
        Ok(Some(Self {
            http,
            https,
            no_proxy,
        }))
    }

    /// The proxy for `url`, or `None` to connect directly.
    fn proxy_for(&self, url: &reqwest::Url) -> Option<reqwest::Url> {
        if is_loopback(url) {
            return None;
        }
        let proxy = match url.scheme() {
            "https" => self.https.as_ref()?,
            "http" => self.http.as_ref()?,
            _ => return None,
        };
        let uri: http::Uri = url.as_str().parse().ok()?;
        self.no_proxy.intercept(&uri)?;
        Some(proxy.clone())
    }
}

/// `localhost` or a literal loopback address: never proxied (Go's `useProxy` rule).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// The User-Agent for a suffix: `rust-azure-provider/<version>` then the suffix, if any.
pub fn user_agent(suffix: &str) -> String {
    let suffix = suffix.trim();
    if suffix.is_empty() {
        USER_AGENT_PRODUCT.to_owned()
    } else {
        format!("{USER_AGENT_PRODUCT} {suffix}")
    }
}

/// `Authorization: Bearer <token>` marked sensitive, so hyper/reqwest never print it.
///
/// # Errors
///
/// When the token holds characters that are not allowed in a header (the token is not echoed).
pub fn bearer_header(token: &SecretString) -> Result<HeaderValue, InvalidHeaderValue> {
    // The formatted text is a copy of the token: wipe it once the header owns its bytes.
    let text = zeroize::Zeroizing::new(format!("Bearer {}", token.expose()));
    let mut value = HeaderValue::from_str(&text)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Reads the PEM certificates of a CA bundle; never echoes the file content.
///
/// # Errors
///
/// [`HttpError::CaBundleUnreadable`], [`HttpError::CaBundleInvalid`], [`HttpError::CaBundleEmpty`].
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let bytes = std::fs::read(path).map_err(|source| HttpError::CaBundleUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| HttpError::CaBundleInvalid {
            path: path.to_path_buf(),
        })?;
    if certs.is_empty() {
        return Err(HttpError::CaBundleEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// What kind of transport failure a reqwest error is (no HTTP response was received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    /// The host name did not resolve (directly, not through a proxy).
    Dns,
    /// The TLS handshake failed (untrusted certificate, name mismatch, protocol error).
    Tls,
    /// The connection could not be established (refused, proxy CONNECT failure).
    Connect,
    /// The attempt timed out.
    Timeout,
    /// The connection broke after being established (reset, closed early).
    Broken,
    /// The response body could not be decoded or anything else.
    Other,
}

impl TransportFailure {
    /// True when the request cannot have reached the service (safe to call the failure Unavailable).
    pub fn request_not_sent(self) -> bool {
        matches!(self, Self::Dns | Self::Tls | Self::Connect)
    }
}

/// Classifies a reqwest error by walking its source chain.
pub fn classify_transport_error(err: &reqwest::Error) -> TransportFailure {
    if chain_has_tls_error(err) {
        return TransportFailure::Tls;
    }
    if err.is_timeout() {
        return TransportFailure::Timeout;
    }
    if err.is_connect() {
        // hyper-util's connector reports resolver failures as "dns error".
        if chain_mentions(err, "dns error") {
            return TransportFailure::Dns;
        }
        return TransportFailure::Connect;
    }
    if err.is_request() || err.is_body() || err.is_decode() {
        return TransportFailure::Broken;
    }
    TransportFailure::Other
}

fn chain_has_tls_error(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// True when `needle` appears in the message of `err` or of any error in its source chain.
pub(crate) fn chain_mentions(err: &reqwest::Error, needle: &str) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.to_string().contains(needle) {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn user_agent_has_product_and_suffix() {
        assert_eq!(user_agent(""), USER_AGENT_PRODUCT);
        assert!(USER_AGENT_PRODUCT.starts_with("rust-azure-provider/"));
        assert_eq!(
            user_agent("aks-engine/1"),
            format!("{USER_AGENT_PRODUCT} aks-engine/1")
        );
    }

    #[test]
    fn bearer_header_is_sensitive_and_debug_redacted() {
        let h = bearer_header(&SecretString::from("tok-123")).unwrap();
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("tok-123"));
    }

    #[test]
    fn missing_ca_bundle_is_a_clear_error() {
        let err = HttpClient::new(&HttpConfig {
            ca_bundle: Some("/nonexistent/ca.pem".into()),
            ..HttpConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.code(), "ca_bundle_unreadable");
        assert_eq!(err.class(), ErrorClass::FailedPrecondition);
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn ca_bundle_without_certificates_is_rejected_without_echo() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "super-secret-looking content, not a certificate").unwrap();
        let err = read_ca_bundle(f.path()).unwrap_err();
        assert_eq!(err.code(), "ca_bundle_empty");
        assert!(!err.to_string().contains("super-secret"));
    }

    #[test]
    fn broken_pem_is_rejected_without_echo() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "-----BEGIN CERTIFICATE-----\nnot base64 !!! hidden-words\n-----END CERTIFICATE-----"
        )
        .unwrap();
        let err = read_ca_bundle(f.path()).unwrap_err();
        assert!(matches!(
            err,
            HttpError::CaBundleInvalid { .. } | HttpError::CaBundleEmpty { .. }
        ));
        assert!(!err.to_string().contains("hidden-words"));
    }

    #[test]
    fn invalid_proxy_url_is_rejected_without_echo() {
        let err = HttpClient::new(&HttpConfig {
            proxy_override: Some("::not a url user:pw@".into()),
            ..HttpConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.code(), "invalid_proxy");
        assert!(!err.to_string().contains("pw@"));
    }

    fn rules(config: &HttpConfig, vars: &[(&str, &str)]) -> Option<ProxyRules> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxyRules::new(config, move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn via(rules: &ProxyRules, url: &str) -> Option<String> {
        rules
            .proxy_for(&reqwest::Url::parse(url).unwrap())
            .map(|u| u.to_string())
    }

    #[test]
    fn loopback_is_never_proxied_from_the_environment() {
        let r = rules(
            &HttpConfig::default(),
            &[
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("HTTP_PROXY", "http://user:pw@proxy:3128"),
            ],
        )
        .unwrap();
        for direct in [
            "http://localhost:2579/host/token/",
            "http://LOCALHOST:2579/",
            "https://localhost/",
            "http://127.0.0.1:2579/",
            "https://127.1.2.3:8443/",
            "http://[::1]:2579/",
            "http://[::ffff:127.0.0.1]:2579/",
        ] {
            assert_eq!(via(&r, direct), None, "{direct}");
        }
        // Names are not resolved, and only the exact name localhost is special (as in Go).
        assert_eq!(
            via(&r, "http://nmi.localhost:2579/").as_deref(),
            Some("http://user:pw@proxy:3128/")
        );
        assert_eq!(
            via(&r, "https://login.microsoftonline.com/t/oauth2/v2.0/token").as_deref(),
            Some("http://proxy:3128/")
        );
        assert_eq!(
            via(&r, "http://169.254.169.254/metadata/identity/oauth2/token").as_deref(),
            Some("http://user:pw@proxy:3128/")
        );
    }

    #[test]
    fn no_proxy_all_proxy_and_lower_case_variables() {
        let r = rules(
            &HttpConfig::default(),
            &[
                ("all_proxy", "proxy:8080"),
                ("no_proxy", "vault.azure.net,10.0.0.0/8"),
            ],
        )
        .unwrap();
        assert_eq!(via(&r, "https://kv.vault.azure.net/secrets/s"), None);
        assert_eq!(via(&r, "http://10.1.2.3/"), None);
        assert_eq!(
            via(&r, "https://login.microsoftonline.com/").as_deref(),
            Some("http://proxy:8080/")
        );
        // A scheme's own variable wins over ALL_PROXY; nothing set means no proxy at all.
        let r = rules(
            &HttpConfig::default(),
            &[
                ("ALL_PROXY", "http://all:1"),
                ("HTTPS_PROXY", "http://tls:2"),
            ],
        )
        .unwrap();
        assert_eq!(
            via(&r, "https://a.example/").as_deref(),
            Some("http://tls:2/")
        );
        assert_eq!(
            via(&r, "http://a.example/").as_deref(),
            Some("http://all:1/")
        );
        assert!(rules(&HttpConfig::default(), &[("NO_PROXY", "*")]).is_none());
        assert!(rules(&HttpConfig::default(), &[("HTTPS_PROXY", "")]).is_none());
    }

    #[test]
    fn outbound_proxy_override_also_skips_loopback() {
        let config = HttpConfig {
            proxy_override: Some("http://override:3128".into()),
            no_proxy: Some(String::new()),
            ..HttpConfig::default()
        };
        // The override wins over the environment; an empty --no-proxy still keeps loopback direct.
        let r = rules(
            &config,
            &[("HTTPS_PROXY", "http://env:1"), ("NO_PROXY", "*")],
        )
        .unwrap();
        assert_eq!(via(&r, "http://localhost:2579/"), None);
        assert_eq!(via(&r, "https://127.0.0.1:443/"), None);
        assert_eq!(
            via(&r, "https://login.microsoftonline.com/").as_deref(),
            Some("http://override:3128/")
        );
        // Without --no-proxy, NO_PROXY applies to the override.
        let config = HttpConfig {
            no_proxy: None,
            ..config
        };
        let r = rules(&config, &[("NO_PROXY", "microsoftonline.com")]).unwrap();
        assert_eq!(via(&r, "https://login.microsoftonline.com/"), None);
        assert!(format!("{r:?}").contains("https: true"));
        assert!(!format!("{r:?}").contains("override"));
    }

    #[test]
    fn default_client_builds() {
        let c = HttpClient::new(&HttpConfig::default()).unwrap();
        assert!(c.user_agent().starts_with("rust-azure-provider/"));
        assert!(!format!("{c:?}").is_empty());
    }
}
