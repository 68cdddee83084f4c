//! Identity-binding SNI name discovery (azure-behaviour.md §5.6): when `--sni-name` is empty,
//! one TLS dial to the API server, whose leaf certificate names the AKS cluster in a DNS SAN.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use der::Decode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::token_proxy::{
    SERVICE_ACCOUNT_CA_PATH, cluster_id_from_dns_names, sni_name_for_cluster,
};
use crate::error::ErrorClass;

/// TLS server name of the handshake (and, in a cluster, the host dialled).
pub const API_SERVER_NAME: &str = "kubernetes.default.svc.cluster.local";

/// Bound on connect plus handshake.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variable holding the API server port (set by the kubelet).
pub const SERVICE_PORT_ENV: &str = "KUBERNETES_SERVICE_PORT";

/// Where discovery dials. The handshake always uses [`API_SERVER_NAME`] as server name, so a
/// test can dial a local server whose certificate carries that name.
#[derive(Clone, Debug)]
pub struct DiscoveryTarget {
    /// Host or address connected to.
    pub host: String,
    /// Port connected to.
    pub port: u16,
    /// PEM file of the only trusted roots.
    pub ca_path: PathBuf,
    /// Bound on connect plus handshake.
    pub timeout: Duration,
}

impl DiscoveryTarget {
    /// The in-cluster API server: [`API_SERVER_NAME`] on `$KUBERNETES_SERVICE_PORT` (443 when
    /// unset), trusting [`SERVICE_ACCOUNT_CA_PATH`], within [`DISCOVERY_TIMEOUT`].
    pub fn in_cluster() -> Self {
        let value = std::env::var(SERVICE_PORT_ENV).unwrap_or_default();
        let port = port_from_env(&value).unwrap_or_else(|| {
            tracing::warn!(value = %value, "{SERVICE_PORT_ENV} is not a port; using 443 for SNI name discovery");
            443
        });
        Self {
            host: API_SERVER_NAME.to_owned(),
            port,
            ca_path: PathBuf::from(SERVICE_ACCOUNT_CA_PATH),
            timeout: DISCOVERY_TIMEOUT,
        }
    }
}

/// `None` when `value` is set but not a port.
fn port_from_env(value: &str) -> Option<u16> {
    let value = value.trim();
    if value.is_empty() {
        return Some(443);
    }
    value.parse().ok().filter(|p| *p != 0)
}

/// Why the SNI name could not be computed. Reported (after `proxy transport not available: `)
/// only by Mounts that use identity binding.
#[derive(Debug, thiserror::Error)]
pub enum SniDiscoveryError {
    /// The CA file cannot be read or holds no usable certificate.
    #[error("cannot compute the SNI name: CA file {path}: {reason}; set --sni-name")]
    Ca {
        /// The CA file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TCP connection failed.
    #[error("cannot compute the SNI name: cannot connect to {addr}: {source}; set --sni-name")]
    Connect {
        /// `host:port` dialled.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (for example, the certificate is not trusted by the CA file).
    #[error(
        "cannot compute the SNI name: TLS handshake with {addr} (server name {API_SERVER_NAME}) failed: {source}; set --sni-name"
    )]
    Handshake {
        /// `host:port` dialled.
        addr: String,
        /// The TLS error.
        #[source]
        source: io::Error,
    },
    /// No connection and handshake within the bound.
    #[error(
        "cannot compute the SNI name: no TLS handshake with {addr} within {timeout:?}; set --sni-name"
    )]
    Timeout {
        /// `host:port` dialled.
        addr: String,
        /// The bound.
        timeout: Duration,
    },
    /// The server sent no certificate or one that does not parse.
    #[error(
        "cannot compute the SNI name: the certificate of {addr} cannot be read: {reason}; set --sni-name"
    )]
    Certificate {
        /// `host:port` dialled.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The leaf certificate has no `hcp-kubernetes.<clusterID>.svc.cluster.local` DNS name.
    #[error(
        "cannot compute the SNI name: the certificate of {addr} has no DNS name hcp-kubernetes.<clusterID>.svc.cluster.local (identity binding needs an AKS cluster); set --sni-name"
    )]
    NoClusterId {
        /// `host:port` dialled.
        addr: String,
    },
}

impl SniDiscoveryError {
    /// Identity binding cannot be used until the operator sets `--sni-name` or fixes the cause.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::FailedPrecondition
    }

    /// Bounded metric code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ca { .. } => "sni_discovery_ca",
            Self::Connect { .. } => "sni_discovery_connect",
            Self::Handshake { .. } => "sni_discovery_tls",
            Self::Timeout { .. } => "sni_discovery_timeout",
            Self::Certificate { .. } => "sni_discovery_certificate",
            Self::NoClusterId { .. } => "sni_discovery_no_cluster_id",
        }
    }
}

/// Dials `target`, reads the DNS SANs of the leaf certificate and derives the SNI name from
/// the cluster id they name.
///
/// # Errors
/// [`SniDiscoveryError`] naming the step that failed.
pub async fn discover_sni_name(target: &DiscoveryTarget) -> Result<String, SniDiscoveryError> {
    let addr = format!("{}:{}", target.host, target.port);
    let connector = connector(target)?;
    let server_name =
        ServerName::try_from(API_SERVER_NAME).map_err(|e| SniDiscoveryError::Certificate {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    let handshake = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| SniDiscoveryError::Connect {
                addr: addr.clone(),
                source,
            })?;
        connector
            .connect(server_name, tcp)
            .await
            .map_err(|source| SniDiscoveryError::Handshake {
                addr: addr.clone(),
                source,
            })
    };
    let tls = tokio::time::timeout(target.timeout, handshake)
        .await
        .map_err(|_| SniDiscoveryError::Timeout {
            addr: addr.clone(),
            timeout: target.timeout,
        })??;
    let (_, session) = tls.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| SniDiscoveryError::Certificate {
            addr: addr.clone(),
            reason: "no certificate was presented".into(),
        })?;
    let names = dns_names(leaf).map_err(|reason| SniDiscoveryError::Certificate {
        addr: addr.clone(),
        reason,
    })?;
    let cluster_id = cluster_id_from_dns_names(names.iter().map(String::as_str))
        .ok_or(SniDiscoveryError::NoClusterId { addr })?;
    Ok(sni_name_for_cluster(cluster_id))
}

fn connector(target: &DiscoveryTarget) -> Result<TlsConnector, SniDiscoveryError> {
    let ca_error = |reason: String| SniDiscoveryError::Ca {
        path: target.ca_path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(&target.ca_path).map_err(|e| ca_error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|_| ca_error("not valid PEM".into()))?;
        roots
            .add(cert)
            .map_err(|e| ca_error(format!("invalid certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_error(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The DNS names of the subject alternative name extension of `cert`.
fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let cert = Certificate::from_der(cert.as_ref()).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != <SubjectAltName as der::oid::AssociatedOid>::OID {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(|e| e.to_string())?;
        names.extend(san.0.into_iter().filter_map(|n| match n {
            GeneralName::DnsName(d) => Some(d.to_string()),
            _ => None,
        }));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::io::Write;
    use tokio::net::TcpListener;

    struct Pki {
        ca_file: tempfile::NamedTempFile,
        server: Arc<rustls::ServerConfig>,
    }

    fn pki(sans: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(ca_cert.pem().as_bytes()).unwrap();
        Pki {
            ca_file,
            server: Arc::new(server),
        }
    }

    /// A TLS server on 127.0.0.1:0 answering handshakes with `config` until the test ends.
    async fn tls_server(config: Arc<rustls::ServerConfig>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The handshake may fail on purpose (untrusted CA); keep the stream
                    // open briefly so the client reads the result, not a reset.
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        drop(tls);
                    }
                });
            }
        });
        port
    }

    fn target(port: u16, ca: &tempfile::NamedTempFile) -> DiscoveryTarget {
        DiscoveryTarget {
            host: "127.0.0.1".into(),
            port,
            ca_path: ca.path().to_path_buf(),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn finds_the_cluster_id_and_derives_the_sni_name() {
        let pki = pki(&[
            "kubernetes",
            API_SERVER_NAME,
            "hcp-kubernetes.abc123.svc.cluster.local",
        ]);
        let port = tls_server(pki.server.clone()).await;
        let sni = discover_sni_name(&target(port, &pki.ca_file))
            .await
            .unwrap();
        assert_eq!(sni, sni_name_for_cluster("abc123"));
    }

    #[tokio::test]
    async fn leaf_without_hcp_name_is_a_clear_error() {
        let pki = pki(&[API_SERVER_NAME, "kubernetes.default.svc"]);
        let port = tls_server(pki.server.clone()).await;
        let e = discover_sni_name(&target(port, &pki.ca_file))
            .await
            .unwrap_err();
        assert!(matches!(e, SniDiscoveryError::NoClusterId { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot compute the SNI name: the certificate of 127.0.0.1:{port} has no DNS name hcp-kubernetes.<clusterID>.svc.cluster.local (identity binding needs an AKS cluster); set --sni-name"
            )
        );
        assert_eq!(e.class(), ErrorClass::FailedPrecondition);
    }

    #[tokio::test]
    async fn untrusted_ca_fails_the_handshake() {
        let server = pki(&[API_SERVER_NAME, "hcp-kubernetes.abc123.svc.cluster.local"]);
        let other = pki(&[API_SERVER_NAME]);
        let port = tls_server(server.server.clone()).await;
        let e = discover_sni_name(&target(port, &other.ca_file))
            .await
            .unwrap_err();
        assert!(matches!(e, SniDiscoveryError::Handshake { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "cannot compute the SNI name: TLS handshake with 127.0.0.1:{port} (server name kubernetes.default.svc.cluster.local) failed: "
            )),
            "{msg}"
        );
        assert!(msg.contains("invalid peer certificate"), "{msg}");
    }

    #[tokio::test]
    async fn server_name_must_match() {
        // Trusted CA, but the certificate does not cover kubernetes.default.svc.cluster.local.
        let pki = pki(&["localhost", "hcp-kubernetes.abc123.svc.cluster.local"]);
        let port = tls_server(pki.server.clone()).await;
        let e = discover_sni_name(&target(port, &pki.ca_file))
            .await
            .unwrap_err();
        assert!(matches!(e, SniDiscoveryError::Handshake { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn silent_server_times_out_within_the_bound() {
        let pki = pki(&[API_SERVER_NAME]);
        // Accepts TCP and never answers the ClientHello.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        let mut t = target(port, &pki.ca_file);
        t.timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let e = discover_sni_name(&t).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(e, SniDiscoveryError::Timeout { .. }), "{e:?}");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot compute the SNI name: no TLS handshake with 127.0.0.1:{port} within 300ms; set --sni-name"
            )
        );
        hold.abort();
    }

    #[tokio::test]
    async fn closed_port_is_a_connect_error() {
        let pki = pki(&[API_SERVER_NAME]);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = discover_sni_name(&target(port, &pki.ca_file))
            .await
            .unwrap_err();
        assert!(matches!(e, SniDiscoveryError::Connect { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!(
                "cannot compute the SNI name: cannot connect to 127.0.0.1:{port}: "
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn missing_ca_file_fails_before_dialling() {
        let e = discover_sni_name(&DiscoveryTarget {
            host: "192.0.2.1".into(),
            port: 443,
            ca_path: "/nonexistent/ca.crt".into(),
            timeout: Duration::from_secs(10),
        })
        .await
        .unwrap_err();
        assert!(matches!(e, SniDiscoveryError::Ca { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("cannot compute the SNI name: CA file /nonexistent/ca.crt: "),
            "{e}"
        );
    }

    #[test]
    fn service_port_from_env() {
        assert_eq!(port_from_env(""), Some(443));
        assert_eq!(port_from_env("6443"), Some(6443));
        assert_eq!(port_from_env("x"), None);
        assert_eq!(port_from_env("0"), None);
    }
}
