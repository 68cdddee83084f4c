//! PKCS#12 -> PEM key + chain, chain ordering, DER <-> PEM, and PEM -> PKCS#12.
//!
//! Output matches the reference byte for byte (azure-behaviour.md §8.2-8.4):
//! every private key first, re-encoded as unencrypted PKCS#8 the way Go's
//! `x509.MarshalPKCS8PrivateKey` writes it, then the certificates; 64-column
//! base64, `\n` line ends, no PEM headers.

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Reader, Sequence, SliceReader};
use sha1::{Digest, Sha1};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::pkcs12::{self, CertEntry, KeyEntry};
use super::{RenderError, RenderWarning, decode_go_base64};

pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const OID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const OID_AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

const CERTIFICATE: &str = "CERTIFICATE";
const PRIVATE_KEY: &str = "PRIVATE KEY";

/// The NIST curves Key Vault keys and certificates use (and Go supports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            Self::P384 => ObjectIdentifier::new_unwrap("1.3.132.0.34"),
            Self::P521 => ObjectIdentifier::new_unwrap("1.3.132.0.35"),
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [Self::P256, Self::P384, Self::P521]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    /// Byte length of a field element and of a scalar.
    pub(crate) fn size(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// Checks an uncompressed SEC1 point lies on the curve.
    pub(crate) fn check_point(self, point: &[u8]) -> bool {
        match self {
            Self::P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P521 => p521::PublicKey::from_sec1_bytes(point).is_ok(),
        }
    }

    /// The uncompressed public point of the scalar `d` (already padded to `size()`).
    fn public_point(self, d: &[u8]) -> Option<Vec<u8>> {
        use elliptic_curve_sec1::ToEncodedPoint;
        Some(match self {
            Self::P256 => p256::SecretKey::from_slice(d)
                .ok()?
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Self::P384 => p384::SecretKey::from_slice(d)
                .ok()?
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Self::P521 => p521::SecretKey::from_slice(d)
                .ok()?
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        })
    }
}

mod elliptic_curve_sec1 {
    pub(super) use p256::elliptic_curve::sec1::ToEncodedPoint;
}

/// DER `SubjectPublicKeyInfo` for an algorithm and public key bytes.
pub(crate) fn encode_spki(
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'_>>,
    public_key: &[u8],
) -> Result<Vec<u8>, RenderError> {
    SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef { oid, parameters },
        subject_public_key: BitStringRef::from_bytes(public_key).map_err(RenderError::Encode)?,
    }
    .to_der()
    .map_err(RenderError::Encode)
}

/// One PEM block. Headers are kept so that splitting re-encodes them as Go's
/// `pem.Encode` would.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

/// PEM-encodes `der` under `label`: 64-column base64, `\n` line ends.
pub(crate) fn encode_pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    encode_block(label, &[], der)
}

fn encode_block(label: &str, headers: &[(String, String)], der: &[u8]) -> Zeroizing<String> {
    use base64::Engine;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    if !headers.is_empty() {
        // Go's pem.Encode: Proc-Type first, then the other headers sorted by name.
        let mut sorted: Vec<&(String, String)> = headers.iter().collect();
        sorted.sort_by(|a, b| {
            (a.0 != "Proc-Type", a.0.as_str()).cmp(&(b.0 != "Proc-Type", b.0.as_str()))
        });
        for (k, v) in sorted {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        }
        out.push('\n');
    }
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Parses every PEM block in `text`, skipping text between blocks and blocks
/// whose body is not base64 (as Go's `pem.Decode` loop does).
pub(crate) fn parse_pem(text: &str) -> Vec<PemBlock> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.trim_end_matches([' ', '\t', '\r']))
        .collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(label) = lines[i]
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        let mut headers = Vec::new();
        while let Some((k, v)) = lines.get(j).and_then(|l| l.split_once(':')) {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
            j += 1;
        }
        let Some(end) = (j..lines.len()).find(|&k| lines[k].starts_with("-----END ")) else {
            break;
        };
        if lines[end] != format!("-----END {label}-----") {
            i += 1;
            continue;
        }
        let body: Zeroizing<String> = Zeroizing::new(
            lines[j..end]
                .iter()
                .flat_map(|l| l.chars())
                .filter(|c| !matches!(c, ' ' | '\t'))
                .collect(),
        );
        match decode_go_base64(&body) {
            Ok(der) => {
                blocks.push(PemBlock {
                    label: label.to_owned(),
                    headers,
                    der,
                });
                i = end + 1;
            }
            Err(_) => i += 1,
        }
    }
    blocks
}

/// Splits PEM text into (`.crt` content, `.key` content): CERTIFICATE blocks
/// and every other block, each re-encoded (azure-behaviour.md §8.4).
pub(crate) fn split_pem(text: &str) -> (Zeroizing<String>, Zeroizing<String>) {
    let mut crt = Zeroizing::new(String::new());
    let mut key = Zeroizing::new(String::new());
    for block in parse_pem(text) {
        let encoded = encode_block(&block.label, &block.headers, &block.der);
        if block.label == CERTIFICATE {
            crt.push_str(&encoded);
        } else {
            key.push_str(&encoded);
        }
    }
    (crt, key)
}

/// `PrivateKeyInfo` as written: version 0, no attributes.
#[derive(Sequence)]
struct PrivateKeyInfoOut<'a> {
    version: u8,
    algorithm: AlgorithmIdentifierRef<'a>,
    private_key: OctetStringRef<'a>,
}

/// A parsed private key in the canonical form Go re-marshals it to.
pub(crate) enum PrivateKey {
    /// Canonical PKCS#1 `RSAPrivateKey` DER.
    Rsa(Zeroizing<Vec<u8>>),
    /// EC scalar padded to the curve size, and its uncompressed public point.
    Ec {
        curve: Curve,
        d: Zeroizing<Vec<u8>>,
        public: Vec<u8>,
    },
}

const KEY_PARSE_ERROR: RenderError =
    RenderError::PrivateKey("failed to parse key for type pkcs1, pkcs8 or ec");

impl PrivateKey {
    /// Parses DER as PKCS#1, then PKCS#8, then SEC1, the reference's order.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, RenderError> {
        if let Ok(rsa) = pkcs1::RsaPrivateKey::from_der(der) {
            return Self::from_pkcs1(&rsa);
        }
        if let Ok((oid, params, inner)) = parse_pkcs8(der) {
            return match oid {
                OID_RSA_ENCRYPTION => {
                    let rsa = pkcs1::RsaPrivateKey::from_der(inner).map_err(|_| KEY_PARSE_ERROR)?;
                    Self::from_pkcs1(&rsa)
                }
                OID_EC_PUBLIC_KEY => {
                    let curve_oid = params
                        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                        .ok_or(RenderError::PrivateKey(
                            "EC private key without a named curve is not supported",
                        ))?;
                    Self::from_sec1(inner, Some(curve_oid))
                }
                _ => Err(RenderError::PrivateKey(
                    "private key algorithm is not supported (RSA and EC P-256/P-384/P-521 are)",
                )),
            };
        }
        if sec1::EcPrivateKey::from_der(der).is_ok() {
            return Self::from_sec1(der, None);
        }
        Err(KEY_PARSE_ERROR)
    }

    fn from_pkcs1(rsa: &pkcs1::RsaPrivateKey<'_>) -> Result<Self, RenderError> {
        Ok(Self::Rsa(Zeroizing::new(
            rsa.to_der().map_err(RenderError::Encode)?,
        )))
    }

    fn from_sec1(der: &[u8], curve_oid: Option<ObjectIdentifier>) -> Result<Self, RenderError> {
        let ec = sec1::EcPrivateKey::from_der(der).map_err(|_| KEY_PARSE_ERROR)?;
        let oid = curve_oid
            .or_else(|| ec.parameters.and_then(|p| p.named_curve()))
            .ok_or(RenderError::PrivateKey(
                "EC private key without a named curve is not supported",
            ))?;
        let curve = Curve::from_oid(oid).ok_or(RenderError::PrivateKey(
            "EC private key curve is not supported (P-256, P-384 and P-521 are)",
        ))?;
        // Go accepts scalars with extra leading zeros or missing leading zeros.
        let mut scalar = ec.private_key;
        while scalar.len() > curve.size() && scalar.first() == Some(&0) {
            scalar = &scalar[1..];
        }
        if scalar.len() > curve.size() {
            return Err(RenderError::PrivateKey("invalid EC private key length"));
        }
        let mut d = Zeroizing::new(vec![0u8; curve.size()]);
        d[curve.size() - scalar.len()..].copy_from_slice(scalar);
        let public = curve
            .public_point(&d)
            .ok_or(RenderError::PrivateKey("invalid EC private key value"))?;
        Ok(Self::Ec { curve, d, public })
    }

    /// PKCS#8 DER as Go's `x509.MarshalPKCS8PrivateKey` writes it.
    pub(crate) fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, RenderError> {
        let null = der::asn1::Null.to_der().map_err(RenderError::Encode)?;
        match self {
            Self::Rsa(pkcs1) => Ok(Zeroizing::new(
                PrivateKeyInfoOut {
                    version: 0,
                    algorithm: AlgorithmIdentifierRef {
                        oid: OID_RSA_ENCRYPTION,
                        parameters: Some(AnyRef::from_der(&null).map_err(RenderError::Encode)?),
                    },
                    private_key: OctetStringRef::new(pkcs1).map_err(RenderError::Encode)?,
                }
                .to_der()
                .map_err(RenderError::Encode)?,
            )),
            Self::Ec { curve, d, public } => {
                // The curve is in the AlgorithmIdentifier, so the inner key omits it.
                let inner = Zeroizing::new(
                    sec1::EcPrivateKey {
                        private_key: d,
                        parameters: None,
                        public_key: Some(public),
                    }
                    .to_der()
                    .map_err(RenderError::Encode)?,
                );
                let curve_oid = curve.oid().to_der().map_err(RenderError::Encode)?;
                Ok(Zeroizing::new(
                    PrivateKeyInfoOut {
                        version: 0,
                        algorithm: AlgorithmIdentifierRef {
                            oid: OID_EC_PUBLIC_KEY,
                            parameters: Some(
                                AnyRef::from_der(&curve_oid).map_err(RenderError::Encode)?,
                            ),
                        },
                        private_key: OctetStringRef::new(&inner).map_err(RenderError::Encode)?,
                    }
                    .to_der()
                    .map_err(RenderError::Encode)?,
                ))
            }
        }
    }

    /// DER `SubjectPublicKeyInfo` of the matching public key.
    pub(crate) fn public_spki(&self) -> Result<Vec<u8>, RenderError> {
        match self {
            Self::Rsa(der) => {
                let rsa = pkcs1::RsaPrivateKey::from_der(der).map_err(RenderError::Encode)?;
                let public = rsa.public_key().to_der().map_err(RenderError::Encode)?;
                let null = der::asn1::Null.to_der().map_err(RenderError::Encode)?;
                encode_spki(
                    OID_RSA_ENCRYPTION,
                    Some(AnyRef::from_der(&null).map_err(RenderError::Encode)?),
                    &public,
                )
            }
            Self::Ec { curve, public, .. } => {
                let curve_oid = curve.oid().to_der().map_err(RenderError::Encode)?;
                encode_spki(
                    OID_EC_PUBLIC_KEY,
                    Some(AnyRef::from_der(&curve_oid).map_err(RenderError::Encode)?),
                    public,
                )
            }
        }
    }
}

/// Reads a PKCS#8 `PrivateKeyInfo` (v1 or v2), ignoring attributes and the
/// optional public key: (algorithm, parameters, inner key).
fn parse_pkcs8(der: &[u8]) -> der::Result<(ObjectIdentifier, Option<AnyRef<'_>>, &[u8])> {
    let mut reader = SliceReader::new(der)?;
    let parsed = reader.sequence(|r| {
        let version: u8 = r.decode()?;
        if version > 1 {
            return Err(der::Tag::Integer.value_error());
        }
        let alg: AlgorithmIdentifierRef<'_> = r.decode()?;
        let key: OctetStringRef<'_> = r.decode()?;
        while !r.is_finished() {
            r.decode::<AnyRef<'_>>()?;
        }
        Ok((alg.oid, alg.parameters, key.as_bytes()))
    })?;
    reader.finish(parsed)
}

/// Subject and authority key identifiers of a certificate (empty when absent).
fn key_identifiers(cert: &Certificate) -> Result<(Vec<u8>, Vec<u8>), der::Error> {
    let mut aki = Vec::new();
    let mut ski = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id == OID_AUTHORITY_KEY_ID {
            let v =
                x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes())?;
            if let Some(id) = v.key_identifier {
                aki = id.as_bytes().to_vec();
            }
        } else if ext.extn_id == OID_SUBJECT_KEY_ID {
            let v =
                x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())?;
            ski = v.0.as_bytes().to_vec();
        }
    }
    Ok((aki, ski))
}

/// The result of chain construction.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChainOrder {
    /// Indices leaf -> intermediates -> root.
    Chain(Vec<usize>),
    /// The walk from the leaf did not reach every certificate: keep file order.
    Incomplete {
        /// Certificates reached from the leaf.
        covered: usize,
    },
}

/// Chain construction exactly as the reference does it (azure-behaviour.md §8.3),
/// on (AuthorityKeyIdentifier, SubjectKeyIdentifier) pairs, empty when absent.
pub(crate) fn order_chain(ids: &[(Vec<u8>, Vec<u8>)]) -> Result<ChainOrder, RenderError> {
    let n = ids.len();
    if n == 0 {
        return Ok(ChainOrder::Chain(Vec::new()));
    }
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut is_parent = vec![false; n];
    for (i, (aki, _)) in ids.iter().enumerate() {
        for (j, (_, ski)) in ids.iter().enumerate() {
            if i == j || (aki.is_empty() && ski.is_empty()) {
                continue;
            }
            if aki == ski {
                parent[i] = Some(j);
                is_parent[j] = true;
                break;
            }
        }
    }
    let leaf = (0..n).find(|&i| !is_parent[i]).ok_or(RenderError::NoLeaf)?;
    let mut order = vec![leaf];
    let mut current = leaf;
    while let Some(p) = parent[current] {
        if order.len() > n {
            return Err(RenderError::ChainCycle);
        }
        order.push(p);
        current = p;
    }
    if order.len() != n {
        return Ok(ChainOrder::Incomplete {
            covered: order.len(),
        });
    }
    Ok(ChainOrder::Chain(order))
}

/// Orders certificate DERs leaf -> root, or keeps them when the chain is incomplete.
fn construct_chain(
    certs: Vec<Vec<u8>>,
    warnings: &mut Vec<RenderWarning>,
) -> Result<Vec<Vec<u8>>, RenderError> {
    let ids = certs
        .iter()
        .enumerate()
        .map(|(index, der)| {
            Certificate::from_der(der)
                .and_then(|c| key_identifiers(&c))
                .map_err(|source| RenderError::Certificate { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match order_chain(&ids)? {
        ChainOrder::Chain(order) => {
            let mut slots: Vec<Option<Vec<u8>>> = certs.into_iter().map(Some).collect();
            Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
        }
        ChainOrder::Incomplete { covered } => {
            warnings.push(RenderWarning::IncompleteChain {
                certificates: certs.len(),
                covered,
            });
            Ok(certs)
        }
    }
}

/// PKCS#12 DER (empty password) -> PEM: all keys as PKCS#8, then the certificates.
pub(crate) fn pkcs12_to_pem(
    pfx: &[u8],
    construct_pem_chain: bool,
    warnings: &mut Vec<RenderWarning>,
) -> Result<Zeroizing<String>, RenderError> {
    let contents = pkcs12::decode_pkcs12(pfx).map_err(RenderError::Pkcs12)?;
    let mut out = Zeroizing::new(String::new());
    for key in &contents.keys {
        let pkcs8 = PrivateKey::parse(key)?.to_pkcs8()?;
        out.push_str(&encode_pem(PRIVATE_KEY, &pkcs8));
    }
    let certs = if construct_pem_chain {
        construct_chain(contents.certs, warnings)?
    } else {
        contents.certs
    };
    for cert in &certs {
        out.push_str(&encode_pem(CERTIFICATE, cert));
    }
    Ok(out)
}

/// PEM (keys and certificates in stored order) -> password-less PKCS#12 DER
/// (azure-behaviour.md §12 item 26). Each key is paired with the certificate
/// holding its public key through a `localKeyID` (the certificate's SHA-1, as
/// OpenSSL does), which Windows, .NET and Java use to find the key.
pub(crate) fn pem_to_pkcs12(text: &str) -> Result<Vec<u8>, RenderError> {
    let blocks = parse_pem(text);
    if blocks.is_empty() {
        return Err(RenderError::NoPemBlocks);
    }
    let mut keys: Vec<(Zeroizing<Vec<u8>>, Vec<u8>)> = Vec::new();
    let mut certs: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        match block.label.as_str() {
            CERTIFICATE => {
                let cert = Certificate::from_der(&block.der)
                    .map_err(|source| RenderError::Certificate { index, source })?;
                let spki = cert
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(RenderError::Encode)?;
                certs.push((&block.der, spki));
            }
            // OpenSSL's `ecparam` output carries no key material.
            "EC PARAMETERS" => {}
            _ => {
                let key = PrivateKey::parse(&block.der)?;
                keys.push((key.to_pkcs8()?, key.public_spki()?));
            }
        }
    }
    let local_id = |spki: &[u8]| -> Option<Vec<u8>> {
        certs
            .iter()
            .find(|(_, c)| c.as_slice() == spki)
            .map(|(der, _)| Sha1::digest(der).to_vec())
    };
    let key_entries: Vec<KeyEntry<'_>> = keys
        .iter()
        .map(|(pkcs8, spki)| KeyEntry {
            pkcs8,
            local_key_id: local_id(spki),
        })
        .collect();
    let cert_entries: Vec<CertEntry<'_>> = certs
        .iter()
        .map(|(der, spki)| CertEntry {
            der,
            local_key_id: keys
                .iter()
                .any(|(_, k)| k == spki)
                .then(|| Sha1::digest(der).to_vec()),
        })
        .collect();
    pkcs12::encode_pkcs12(&key_entries, &cert_entries).map_err(RenderError::Pkcs12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(a, s)| (a.as_bytes().to_vec(), s.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn chain_orders_leaf_to_root() {
        // root (self-signed: AKI = SKI), leaf, intermediate
        let order = order_chain(&ids(&[("R", "R"), ("I", "L"), ("R", "I")])).unwrap();
        assert_eq!(order, ChainOrder::Chain(vec![1, 2, 0]));
    }

    #[test]
    fn chain_without_identifiers_falls_back() {
        // The leaf has no AKI: it links to nothing, the walk covers one certificate.
        let order = order_chain(&ids(&[("", "L"), ("R", "R"), ("R", "I")])).unwrap();
        assert_eq!(order, ChainOrder::Incomplete { covered: 1 });
        // Nothing has identifiers at all: every certificate is a leaf.
        let order = order_chain(&ids(&[("", ""), ("", "")])).unwrap();
        assert_eq!(order, ChainOrder::Incomplete { covered: 1 });
    }

    #[test]
    fn chain_single_certificate() {
        assert_eq!(
            order_chain(&ids(&[("", "")])).unwrap(),
            ChainOrder::Chain(vec![0])
        );
    }

    #[test]
    fn chain_all_parents_has_no_leaf() {
        let err = order_chain(&ids(&[("B", "A"), ("A", "B")])).unwrap_err();
        assert!(matches!(err, RenderError::NoLeaf));
        assert_eq!(err.to_string(), "no leaf found");
    }

    #[test]
    fn chain_cycle_is_detected() {
        // C -> A -> B -> A ...
        let err = order_chain(&ids(&[("A", "C"), ("B", "A"), ("A", "B")])).unwrap_err();
        assert!(matches!(err, RenderError::ChainCycle));
        assert_eq!(err.to_string(), "constructing chain resulted in cycle");
    }

    #[test]
    fn pem_roundtrip_and_line_length() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode_pem("CERTIFICATE", &der);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let blocks = parse_pem(&format!("junk\r\n{}trailing", pem.replace('\n', "\r\n")));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].der.as_slice(), der.as_slice());
    }

    #[test]
    fn split_keeps_headers_go_style() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nDEK-Info: X\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END RSA PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
        let (crt, key) = split_pem(text);
        assert_eq!(
            crt.as_str(),
            "-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            key.as_str(),
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: X\n\nAAEC\n-----END RSA PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn mismatched_or_broken_blocks_are_skipped() {
        let text = "-----BEGIN A-----\nAAEC\n-----END B-----\n-----BEGIN C-----\n!!!\n-----END C-----\n-----BEGIN D-----\nAAEC\n-----END D-----\n";
        let blocks = parse_pem(text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, "D");
    }

    #[test]
    fn key_parse_failure_message() {
        let err = PrivateKey::parse(b"\x30\x03\x02\x01\x00").err().unwrap();
        assert_eq!(
            err.to_string(),
            "failed to parse key for type pkcs1, pkcs8 or ec"
        );
    }
}
