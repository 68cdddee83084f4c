//! Object type x format -> bytes: pure functions turning Key Vault values into file contents.
//!
//! Nothing here performs I/O or knows the Key Vault client: callers pass the
//! fields of the Key Vault response (azure-behaviour.md §8).

pub mod extract;
mod jwk;
mod pem;
mod pkcs12;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use crate::error::ErrorClass;
use crate::mount::params::{ObjectEncoding, ObjectFormat};
use crate::secret::{SecretBytes, SecretString};

pub use pkcs12::Pkcs12Error;

/// `contentType` of a certificate-backed secret stored as PEM.
pub const CONTENT_TYPE_PEM: &str = "application/x-pem-file";
/// `contentType` of a certificate-backed secret stored as base64 PKCS#12.
pub const CONTENT_TYPE_PKCS12: &str = "application/x-pkcs12";

/// Process-wide rendering switches (command-line flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// `--construct-pem-chain`: order PEM certificates leaf -> root.
    pub construct_pem_chain: bool,
    /// `--write-cert-and-key-in-separate-files`: also emit `.crt` and `.key`.
    pub write_cert_and_key_in_separate_files: bool,
}

impl Default for RenderOptions {
    /// The reference defaults: chain construction on, no separate files.
    fn default() -> Self {
        Self {
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
        }
    }
}

/// Something worth a log line that did not fail the rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderWarning {
    /// Chain construction could not link every certificate (missing
    /// AuthorityKeyIdentifier/SubjectKeyIdentifier or unrelated certificates),
    /// so the certificates were written in PFX order (reference PR #1701).
    IncompleteChain {
        /// Certificates in the PFX.
        certificates: usize,
        /// Certificates reached by walking from the leaf.
        covered: usize,
    },
}

/// The files rendered for one secret.
#[derive(Debug)]
pub struct Rendered {
    /// Content of the main file (`objectEncoding` applied).
    pub main: SecretBytes,
    /// Content of `<file>.crt`: all CERTIFICATE blocks; only for certificate-backed
    /// secrets with `write_cert_and_key_in_separate_files`. Emitted before `.key`
    /// and the main file.
    pub crt: Option<SecretBytes>,
    /// Content of `<file>.key`: every other PEM block; same condition as `crt`.
    pub key: Option<SecretBytes>,
    /// Non-fatal findings for the caller to log with the object's name.
    pub warnings: Vec<RenderWarning>,
}

/// The members of a Key Vault JSON Web Key the rendering reads (base64url strings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwk {
    /// `kty`: `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct`, ...
    pub kty: Option<String>,
    /// `crv` for EC keys: `P-256`, `P-384`, `P-521`, `P-256K`.
    pub crv: Option<String>,
    /// RSA modulus.
    pub n: Option<String>,
    /// RSA public exponent.
    pub e: Option<String>,
    /// EC x coordinate.
    pub x: Option<String>,
    /// EC y coordinate.
    pub y: Option<String>,
}

/// Why a value could not be rendered. Messages never contain secret content;
/// callers prefix them with the object's name.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// `objectEncoding` could not decode the rendered value.
    #[error(
        "failed to decode the value with objectEncoding {encoding}: {detail}; store the value \
         {encoding}-encoded or remove objectEncoding"
    )]
    Encoding {
        /// `base64` or `hex`.
        encoding: &'static str,
        /// What is wrong (a position, never content).
        detail: String,
    },
    /// Certificate-backed secret with a content type other than PEM or PKCS#12.
    #[error("failed to get certificate. unknown content type '{0}'")]
    UnknownContentType(String),
    /// Certificate-backed secret without a content type (quirk #20).
    #[error(
        "failed to get certificate. the certificate-backed secret has no content type; expected \
         '{CONTENT_TYPE_PKCS12}' or '{CONTENT_TYPE_PEM}'"
    )]
    MissingContentType,
    /// The PKCS#12 value is not standard base64.
    #[error("failed to decode the PKCS#12 certificate: the secret value is not valid base64 ({0})")]
    Pkcs12Base64(String),
    /// The PKCS#12 container could not be read.
    #[error("failed to decode the PKCS#12 certificate: {0}")]
    Pkcs12(#[source] Pkcs12Error),
    /// A private key could not be parsed or is of an unsupported kind.
    #[error("{0}")]
    PrivateKey(&'static str),
    /// A certificate of the chain could not be parsed.
    #[error("failed to parse certificate #{index} of the certificate chain")]
    Certificate {
        /// Zero-based position of the certificate.
        index: usize,
        /// The DER error.
        #[source]
        source: der::Error,
    },
    /// Chain construction: every certificate is some other certificate's issuer.
    #[error("no leaf found")]
    NoLeaf,
    /// Chain construction: the issuer links loop.
    #[error("constructing chain resulted in cycle")]
    ChainCycle,
    /// PEM content of a certificate-backed secret holds no PEM block.
    #[error("the certificate-backed secret's PEM content contains no PEM block")]
    NoPemBlocks,
    /// Key type other than RSA and EC.
    #[error("failed to get key. key type '{0}' currently not supported")]
    UnsupportedKeyType(String),
    /// EC curve other than P-256, P-384, P-521.
    #[error("curve {0} is not supported")]
    UnsupportedCurve(String),
    /// A JWK member the key type requires is absent.
    #[error("key value is malformed: member '{0}' is missing")]
    MissingKeyField(&'static str),
    /// A JWK member is not base64url or has the wrong size.
    #[error("key value is malformed: member '{0}' is not a valid base64url integer")]
    InvalidKeyField(&'static str),
    /// The EC point of a JWK is not on its curve.
    #[error("key value is malformed: the EC point is not on curve {0}")]
    InvalidEcPoint(String),
    /// The `cer` member of a certificate is not base64 DER of one certificate.
    #[error("certificate value is malformed: {0}")]
    InvalidCertificate(&'static str),
    /// DER encoding failed (a bug).
    #[error("DER encoding failed")]
    Encode(#[source] der::Error),
}

impl RenderError {
    /// Class deciding the gRPC code (azure-behaviour.md §12.1).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::MissingKeyField(_)
            | Self::InvalidKeyField(_)
            | Self::InvalidEcPoint(_)
            | Self::InvalidCertificate(_)
            | Self::Encode(_) => ErrorClass::Internal,
            _ => ErrorClass::FailedPrecondition,
        }
    }

    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Encoding { .. } => "object_encoding_invalid",
            Self::UnknownContentType(_) => "content_type_unknown",
            Self::MissingContentType => "content_type_missing",
            Self::Pkcs12Base64(_) | Self::Pkcs12(_) => "pkcs12_invalid",
            Self::PrivateKey(_) => "private_key_invalid",
            Self::Certificate { .. } => "certificate_invalid",
            Self::NoLeaf => "chain_no_leaf",
            Self::ChainCycle => "chain_cycle",
            Self::NoPemBlocks => "pem_empty",
            Self::UnsupportedKeyType(_) => "key_type_unsupported",
            Self::UnsupportedCurve(_) => "curve_unsupported",
            Self::MissingKeyField(_) | Self::InvalidKeyField(_) | Self::InvalidEcPoint(_) => {
                "key_malformed"
            }
            Self::InvalidCertificate(_) => "certificate_malformed",
            Self::Encode(_) => "render_internal",
        }
    }
}

/// Go's `base64.StdEncoding`: standard alphabet, padding required, non-zero
/// trailing bits accepted.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes standard base64 as Go's `base64.StdEncoding.DecodeString` does
/// (which skips `\r` and `\n`). The error names a position, never content.
pub(crate) fn decode_go_base64(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let cleaned: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.bytes()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect(),
    );
    GO_STD_BASE64
        .decode(&*cleaned)
        .map(Zeroizing::new)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(offset, _) => {
                format!("illegal base64 data at input byte {offset}")
            }
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                "invalid length or padding".to_owned()
            }
            base64::DecodeError::InvalidLastSymbol(offset, _) => {
                format!("illegal base64 data at input byte {offset}")
            }
        })
}

/// Applies `objectEncoding` (azure-behaviour.md §8.5).
fn apply_encoding(
    value: SecretBytes,
    encoding: ObjectEncoding,
) -> Result<SecretBytes, RenderError> {
    match encoding {
        ObjectEncoding::Utf8 => Ok(value),
        ObjectEncoding::Base64 => {
            let text = std::str::from_utf8(value.expose()).map_err(|e| RenderError::Encoding {
                encoding: "base64",
                detail: format!("illegal base64 data at input byte {}", e.valid_up_to()),
            })?;
            let mut decoded = decode_go_base64(text).map_err(|detail| RenderError::Encoding {
                encoding: "base64",
                detail,
            })?;
            Ok(SecretBytes::new(std::mem::take(&mut *decoded)))
        }
        ObjectEncoding::Hex => hex::decode(value.expose())
            .map(SecretBytes::new)
            .map_err(|e| RenderError::Encoding {
                encoding: "hex",
                detail: match e {
                    hex::FromHexError::InvalidHexCharacter { index, .. } => {
                        format!("invalid byte at input position {index}")
                    }
                    hex::FromHexError::OddLength => "odd length".to_owned(),
                    hex::FromHexError::InvalidStringLength => "invalid length".to_owned(),
                },
            }),
    }
}

fn into_bytes(text: Zeroizing<String>) -> SecretBytes {
    SecretBytes::new(text.as_bytes().to_vec())
}

/// Renders a secret (`objectType: secret`, azure-behaviour.md §8.1).
///
/// `cert_backed` is true when the secret has a non-empty `kid` (it backs a Key
/// Vault certificate); only then does `content_type` matter, and only then are
/// `.crt`/`.key` produced when `opts.write_cert_and_key_in_separate_files`.
/// Those are always PEM derived from the certificate, also with `objectFormat:
/// pfx`, and `objectEncoding` applies to the main file only (quirk #25). A
/// PEM-stored certificate requested as `pfx` becomes a password-less base64
/// PKCS#12 (quirk #26).
///
/// # Errors
/// [`RenderError`] when the content cannot be converted or decoded.
pub fn render_secret(
    value: SecretString,
    content_type: Option<&str>,
    cert_backed: bool,
    format: ObjectFormat,
    encoding: ObjectEncoding,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let mut warnings = Vec::new();
    if !cert_backed {
        return Ok(Rendered {
            main: apply_encoding(SecretBytes::from(value), encoding)?,
            crt: None,
            key: None,
            warnings,
        });
    }
    let (main, pem_text): (SecretBytes, Option<Zeroizing<String>>) = match content_type {
        Some(CONTENT_TYPE_PEM) => {
            let pem_text = Zeroizing::new(value.expose().to_owned());
            let main = match format {
                ObjectFormat::Pem => SecretBytes::from(value),
                ObjectFormat::Pfx => {
                    let pfx = Zeroizing::new(pem::pem_to_pkcs12(&pem_text)?);
                    SecretBytes::new(
                        base64::engine::general_purpose::STANDARD
                            .encode(&*pfx)
                            .into_bytes(),
                    )
                }
            };
            (main, Some(pem_text))
        }
        Some(CONTENT_TYPE_PKCS12) => {
            let need_pem = format == ObjectFormat::Pem || opts.write_cert_and_key_in_separate_files;
            let pem_text = if need_pem {
                let der = decode_go_base64(value.expose()).map_err(RenderError::Pkcs12Base64)?;
                Some(pem::pkcs12_to_pem(
                    &der,
                    opts.construct_pem_chain,
                    &mut warnings,
                )?)
            } else {
                None
            };
            match (format, pem_text) {
                (ObjectFormat::Pem, Some(text)) => (into_bytes(text.clone()), Some(text)),
                (_, pem_text) => (SecretBytes::from(value), pem_text),
            }
        }
        Some(other) => return Err(RenderError::UnknownContentType(other.to_owned())),
        None => return Err(RenderError::MissingContentType),
    };
    let (crt, key) = match pem_text {
        Some(text) if opts.write_cert_and_key_in_separate_files => {
            let (crt, key) = pem::split_pem(&text);
            (Some(into_bytes(crt)), Some(into_bytes(key)))
        }
        _ => (None, None),
    };
    Ok(Rendered {
        main: apply_encoding(main, encoding)?,
        crt,
        key,
        warnings,
    })
}

/// Renders a key (`objectType: key`): the public key as a `PUBLIC KEY` PEM
/// block (azure-behaviour.md §8.6).
///
/// # Errors
/// [`RenderError::UnsupportedKeyType`], [`RenderError::UnsupportedCurve`], or a
/// malformed-key error when members are missing or invalid.
pub fn render_key(jwk: &Jwk) -> Result<SecretBytes, RenderError> {
    jwk::render_jwk(jwk)
}

/// Renders a certificate (`objectType: cert`): the `cer` member (base64 DER of
/// the leaf) as one `CERTIFICATE` PEM block (azure-behaviour.md §8.7).
///
/// # Errors
/// [`RenderError::InvalidCertificate`] when `cer` is not base64 DER of one certificate.
pub fn render_certificate(cer_base64_der: &str) -> Result<SecretBytes, RenderError> {
    use der::Decode;
    let der = decode_go_base64(cer_base64_der)
        .map_err(|_| RenderError::InvalidCertificate("cer is not valid base64"))?;
    x509_cert::Certificate::from_der(&der)
        .map_err(|_| RenderError::InvalidCertificate("cer is not a DER X.509 certificate"))?;
    Ok(into_bytes(pem::encode_pem("CERTIFICATE", &der)))
}
