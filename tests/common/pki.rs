//! Test PKI: a CA generated at test time, a server certificate for the Azure host names the fakes
//! answer for, and the CA PEM written to a temp file (passed as `--ca-bundle`).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Host names every fake server certificate covers.
pub const DEFAULT_HOSTS: &[&str] = &[
    "*.vault.azure.net",
    "*.vault.usgovcloudapi.net",
    "*.vault.azure.cn",
    "*.vault.microsoftazure.de",
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.microsoftonline.de",
    "localhost",
    "127.0.0.1",
];

/// A CA plus one server certificate signed by it.
pub struct TestPki {
    /// CA certificate, PEM.
    pub ca_pem: String,
    ca_file: tempfile::NamedTempFile,
    /// rustls server configuration presenting the server certificate (ALPN http/1.1).
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    /// Generates the CA and a server certificate for [`DEFAULT_HOSTS`] plus `extra_hosts`.
    pub fn new(extra_hosts: &[&str]) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rust-azure-provider test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let hosts: Vec<String> = DEFAULT_HOSTS
            .iter()
            .chain(extra_hosts.iter())
            .map(|h| (*h).to_owned())
            .collect();
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params = CertificateParams::new(hosts).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "fake-azure");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(leaf.der().to_vec()),
                    CertificateDer::from(ca_cert.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server cert");
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut ca_file = tempfile::NamedTempFile::new().expect("CA temp file");
        std::io::Write::write_all(&mut ca_file, ca_pem.as_bytes()).expect("write CA");
        Self {
            ca_pem,
            ca_file,
            server_config: Arc::new(server_config),
        }
    }

    /// Path of the CA PEM file (for `--ca-bundle` / `HttpConfig::ca_bundle`).
    pub fn ca_path(&self) -> &Path {
        self.ca_file.path()
    }
}
