//! PKCS#12 (RFC 7292) container decoding and encoding with the empty password:
//! MAC check, legacy PBE and PBES2 decryption, safe-bag extraction, and writing.
//!
//! Key Vault stores certificate-backed secrets as password-less PFX files. Files
//! in the wild use either the legacy PKCS#12 PBE schemes (3DES, RC2-40, SHA-1 MAC;
//! what Key Vault itself writes) or PBES2 (PBKDF2 + AES, SHA-2 MAC; OpenSSL 3's
//! default). Both are read here (azure-behaviour.md §12 item 7).

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit, KeyIvInit};
use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef, SetOfVec};
use der::{Decode, Encode, Sequence};
use des::{TdesEde2, TdesEde3};
use hmac::{Hmac, Mac};
use rc2::Rc2;
use sha1::Sha1;
use sha2::digest::Digest;
use sha2::digest::core_api::BlockSizeUser;
use sha2::{Sha224, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierRef;
use zeroize::Zeroizing;

/// Why a PKCS#12 file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    /// The ASN.1 structure is not valid DER of the expected shape.
    #[error("PKCS#12 structure is malformed ({context})")]
    Malformed {
        /// Which structure failed to parse.
        context: &'static str,
        /// The DER error (carries positions and tags, never content).
        #[source]
        source: der::Error,
    },
    /// A structural rule of RFC 7292 is violated.
    #[error("PKCS#12 structure is invalid: {0}")]
    Invalid(&'static str),
    /// An algorithm this implementation does not support.
    #[error("PKCS#12 uses unsupported {kind} algorithm {oid}")]
    UnsupportedAlgorithm {
        /// What the algorithm is for (`MAC digest`, `encryption`, `PRF`, ...).
        kind: &'static str,
        /// The algorithm's object identifier.
        oid: ObjectIdentifier,
    },
    /// The MAC does not verify with the empty password in either encoding.
    #[error(
        "PKCS#12 integrity check failed with the empty password: the PFX is protected by a \
         password or corrupted; Key Vault certificate secrets must use an empty password"
    )]
    WrongPassword,
    /// Decryption produced invalid padding or content.
    #[error(
        "PKCS#12 decryption failed with the empty password: the PFX is protected by a password \
         or corrupted"
    )]
    DecryptionFailed,
}

impl Pkcs12Error {
    fn malformed(context: &'static str) -> impl FnOnce(der::Error) -> Self {
        move |source| Self::Malformed { context, source }
    }
}

type Result<T> = std::result::Result<T, Pkcs12Error>;

mod oids {
    use der::asn1::ObjectIdentifier as Oid;

    pub(super) const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub(super) const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");

    pub(super) const KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.1");
    pub(super) const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
    pub(super) const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
    pub(super) const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
    pub(super) const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");

    pub(super) const PBE_SHA1_RC2_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.5");
    pub(super) const PBE_SHA1_RC2_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.6");
    pub(super) const PBE_SHA1_3DES_3KEY: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.3");
    pub(super) const PBE_SHA1_3DES_2KEY: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.4");

    pub(super) const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
    pub(super) const PBKDF2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.12");
    pub(super) const HMAC_SHA1: Oid = Oid::new_unwrap("1.2.840.113549.2.7");
    pub(super) const HMAC_SHA224: Oid = Oid::new_unwrap("1.2.840.113549.2.8");
    pub(super) const HMAC_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.2.9");
    pub(super) const HMAC_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.2.10");
    pub(super) const HMAC_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.2.11");
    pub(super) const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
    pub(super) const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
    pub(super) const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
    pub(super) const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");

    pub(super) const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub(super) const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
    pub(super) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub(super) const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub(super) const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
}

/// `PFX ::= SEQUENCE { version, authSafe ContentInfo, macData MacData OPTIONAL }`
#[derive(Sequence)]
struct Pfx<'a> {
    version: u8,
    auth_safe: ContentInfo<'a>,
    mac_data: Option<MacData<'a>>,
}

/// `ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY OPTIONAL }`
#[derive(Sequence)]
struct ContentInfo<'a> {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<AnyRef<'a>>,
}

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`
#[derive(Sequence)]
struct MacData<'a> {
    mac: DigestInfo<'a>,
    mac_salt: OctetStringRef<'a>,
    // Option rather than DEFAULT: some writers encode the default value explicitly.
    iterations: Option<u32>,
}

#[derive(Sequence)]
struct DigestInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    digest: OctetStringRef<'a>,
}

/// CMS `EncryptedData` (version 0, no unprotected attributes in PKCS#12).
#[derive(Sequence)]
struct EncryptedData<'a> {
    version: u8,
    encrypted_content_info: EncryptedContentInfo<'a>,
}

#[derive(Sequence)]
struct EncryptedContentInfo<'a> {
    content_type: ObjectIdentifier,
    algorithm: AlgorithmIdentifierRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    encrypted_content: Option<OctetStringRef<'a>>,
}

/// `SafeBag ::= SEQUENCE { bagId, bagValue [0] EXPLICIT ANY, bagAttributes SET OF OPTIONAL }`
#[derive(Sequence)]
struct SafeBag<'a> {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: AnyRef<'a>,
    bag_attributes: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct CertBag<'a> {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: OctetStringRef<'a>,
}

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    encrypted_data: OctetStringRef<'a>,
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`
#[derive(Sequence)]
struct Pkcs12PbeParams<'a> {
    salt: OctetStringRef<'a>,
    iterations: u32,
}

#[derive(Sequence)]
struct Pbes2Params<'a> {
    key_derivation_func: AlgorithmIdentifierRef<'a>,
    encryption_scheme: AlgorithmIdentifierRef<'a>,
}

#[derive(Sequence)]
struct Pbkdf2Params<'a> {
    // Only the `specified` OCTET STRING choice exists in practice.
    salt: OctetStringRef<'a>,
    iteration_count: u32,
    key_length: Option<u32>,
    prf: Option<AlgorithmIdentifierRef<'a>>,
}

#[derive(Sequence)]
struct Attribute<'a> {
    oid: ObjectIdentifier,
    values: SetOfVec<AnyRef<'a>>,
}

impl der::ValueOrd for Attribute<'_> {
    fn value_cmp(&self, other: &Self) -> der::Result<std::cmp::Ordering> {
        Ok(self.to_der()?.cmp(&other.to_der()?))
    }
}

/// Keys and certificates of a PFX, each in file order.
pub(crate) struct Pkcs12Contents {
    /// PKCS#8 `PrivateKeyInfo` DER of every key bag.
    pub(crate) keys: Vec<Zeroizing<Vec<u8>>>,
    /// DER of every X.509 certificate bag.
    pub(crate) certs: Vec<Vec<u8>>,
}

/// The empty password as RFC 7292 specifies it (BMPString with the terminating
/// `00 00`), then as zero bytes, which some writers use instead.
const EMPTY_PASSWORDS: [&[u8]; 2] = [&[0, 0], &[]];

/// Decodes a PFX protected by the empty password.
pub(crate) fn decode_pkcs12(der_bytes: &[u8]) -> Result<Pkcs12Contents> {
    let pfx = Pfx::from_der(der_bytes).map_err(Pkcs12Error::malformed("PFX"))?;
    if pfx.version != 3 {
        return Err(Pkcs12Error::Invalid("PFX version is not 3"));
    }
    if pfx.auth_safe.content_type != oids::DATA {
        return Err(Pkcs12Error::Invalid(
            "authSafe is not of type data (public-key integrity mode is not supported)",
        ));
    }
    let auth_safe = data_octets(&pfx.auth_safe)?;

    let candidates: Vec<&[u8]> = match &pfx.mac_data {
        Some(mac) => {
            let password = EMPTY_PASSWORDS
                .iter()
                .copied()
                .find(|pw| verify_mac(mac, pw, auth_safe).unwrap_or(false))
                .ok_or(Pkcs12Error::WrongPassword);
            // Surface an unsupported MAC digest rather than "wrong password".
            verify_mac(mac, EMPTY_PASSWORDS[0], auth_safe)?;
            vec![password?]
        }
        None => EMPTY_PASSWORDS.to_vec(),
    };

    let mut last_err = Pkcs12Error::DecryptionFailed;
    for password in candidates {
        match decode_auth_safe(auth_safe, password) {
            Ok(contents) => return Ok(contents),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

fn data_octets<'a>(ci: &ContentInfo<'a>) -> Result<&'a [u8]> {
    let content = ci
        .content
        .ok_or(Pkcs12Error::Invalid("data ContentInfo has no content"))?;
    let octets: OctetStringRef<'a> = content
        .decode_as()
        .map_err(Pkcs12Error::malformed("data content"))?;
    Ok(octets.as_bytes())
}

fn verify_mac(mac: &MacData<'_>, password: &[u8], data: &[u8]) -> Result<bool> {
    let salt = mac.mac_salt.as_bytes();
    let iterations = mac.iterations.unwrap_or(1);
    let expected = mac.mac.digest.as_bytes();
    let oid = mac.mac.algorithm.oid;
    Ok(match oid {
        oids::SHA1 => hmac_check::<Sha1, Hmac<Sha1>>(password, salt, iterations, data, expected),
        oids::SHA224 => {
            hmac_check::<Sha224, Hmac<Sha224>>(password, salt, iterations, data, expected)
        }
        oids::SHA256 => {
            hmac_check::<Sha256, Hmac<Sha256>>(password, salt, iterations, data, expected)
        }
        oids::SHA384 => {
            hmac_check::<Sha384, Hmac<Sha384>>(password, salt, iterations, data, expected)
        }
        oids::SHA512 => {
            hmac_check::<Sha512, Hmac<Sha512>>(password, salt, iterations, data, expected)
        }
        _ => {
            return Err(Pkcs12Error::UnsupportedAlgorithm {
                kind: "MAC digest",
                oid,
            });
        }
    })
}

fn hmac_check<D, M>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    data: &[u8],
    expected: &[u8],
) -> bool
where
    D: Digest + BlockSizeUser,
    M: Mac + KeyInit,
{
    let key = pkcs12_kdf::<D>(
        password,
        salt,
        KdfPurpose::Mac,
        iterations,
        <D as Digest>::output_size(),
    );
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(&key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(expected).is_ok()
}

fn compute_mac_sha1(password: &[u8], salt: &[u8], iterations: u32, data: &[u8]) -> Result<Vec<u8>> {
    let key = pkcs12_kdf::<Sha1>(password, salt, KdfPurpose::Mac, iterations, 20);
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&key)
        .map_err(|_| Pkcs12Error::Invalid("HMAC key length"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

#[derive(Clone, Copy)]
enum KdfPurpose {
    Key = 1,
    Iv = 2,
    Mac = 3,
}

/// The PKCS#12 key derivation function (RFC 7292 appendix B.2).
fn pkcs12_kdf<D>(
    password: &[u8],
    salt: &[u8],
    purpose: KdfPurpose,
    iterations: u32,
    len: usize,
) -> Zeroizing<Vec<u8>>
where
    D: Digest + BlockSizeUser,
{
    let u = <D as Digest>::output_size();
    let v = D::block_size();
    let diversifier = vec![purpose as u8; v];
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let n = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(n).collect()
    };
    let mut i_buf = Zeroizing::new(fill(salt));
    i_buf.extend_from_slice(&fill(password));

    let mut out = Zeroizing::new(Vec::with_capacity(len + u));
    while out.len() < len {
        let mut hasher = D::new();
        hasher.update(&diversifier);
        hasher.update(&*i_buf);
        let mut a = Zeroizing::new(hasher.finalize().to_vec());
        for _ in 1..iterations.max(1) {
            *a = D::digest(&*a).to_vec();
        }
        out.extend_from_slice(&a);
        if out.len() >= len {
            break;
        }
        let b: Zeroizing<Vec<u8>> = Zeroizing::new(a.iter().copied().cycle().take(v).collect());
        for block in i_buf.chunks_mut(v) {
            // block = (block + b + 1) mod 2^(8v), big-endian
            let mut carry: u16 = 1;
            for (x, y) in block.iter_mut().zip(b.iter()).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(len);
    out
}

fn decode_auth_safe(auth_safe: &[u8], password: &[u8]) -> Result<Pkcs12Contents> {
    let infos: Vec<ContentInfo<'_>> =
        Vec::from_der(auth_safe).map_err(Pkcs12Error::malformed("AuthenticatedSafe"))?;
    let mut contents = Pkcs12Contents {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for info in &infos {
        let safe_contents: Zeroizing<Vec<u8>> = match info.content_type {
            oids::DATA => Zeroizing::new(data_octets(info)?.to_vec()),
            oids::ENCRYPTED_DATA => {
                let content = info
                    .content
                    .ok_or(Pkcs12Error::Invalid("encryptedData has no content"))?;
                let ed: EncryptedData<'_> = content
                    .decode_as()
                    .map_err(Pkcs12Error::malformed("EncryptedData"))?;
                let eci = &ed.encrypted_content_info;
                let ciphertext = eci.encrypted_content.ok_or(Pkcs12Error::Invalid(
                    "encryptedData has no encrypted content",
                ))?;
                decrypt(&eci.algorithm, password, ciphertext.as_bytes())?
            }
            _ => {
                return Err(Pkcs12Error::Invalid(
                    "authSafe contains a ContentInfo that is neither data nor encryptedData",
                ));
            }
        };
        let bags: Vec<SafeBag<'_>> = Vec::from_der(&safe_contents).map_err(|source| {
            // A wrong password usually surfaces as garbage with valid padding.
            if info.content_type == oids::ENCRYPTED_DATA {
                Pkcs12Error::DecryptionFailed
            } else {
                Pkcs12Error::Malformed {
                    context: "SafeContents",
                    source,
                }
            }
        })?;
        for bag in &bags {
            match bag.bag_id {
                oids::KEY_BAG => contents.keys.push(Zeroizing::new(
                    bag.bag_value
                        .to_der()
                        .map_err(Pkcs12Error::malformed("keyBag"))?,
                )),
                oids::SHROUDED_KEY_BAG => {
                    let epki: EncryptedPrivateKeyInfo<'_> = bag
                        .bag_value
                        .decode_as()
                        .map_err(Pkcs12Error::malformed("pkcs8ShroudedKeyBag"))?;
                    let key = decrypt(&epki.algorithm, password, epki.encrypted_data.as_bytes())?;
                    contents.keys.push(key);
                }
                oids::CERT_BAG => {
                    let cert: CertBag<'_> = bag
                        .bag_value
                        .decode_as()
                        .map_err(Pkcs12Error::malformed("certBag"))?;
                    if cert.cert_id != oids::X509_CERTIFICATE {
                        return Err(Pkcs12Error::UnsupportedAlgorithm {
                            kind: "certificate type",
                            oid: cert.cert_id,
                        });
                    }
                    contents.certs.push(cert.cert_value.as_bytes().to_vec());
                }
                // CRL, secret and nested bags carry nothing the rendering uses.
                _ => {}
            }
        }
    }
    Ok(contents)
}

fn decrypt(
    alg: &AlgorithmIdentifierRef<'_>,
    password: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let params = alg.parameters.ok_or(Pkcs12Error::Invalid(
        "encryption algorithm has no parameters",
    ))?;
    match alg.oid {
        oids::PBES2 => {
            let p: Pbes2Params<'_> = params
                .decode_as()
                .map_err(Pkcs12Error::malformed("PBES2 parameters"))?;
            pbes2_decrypt(&p, ciphertext)
        }
        oid @ (oids::PBE_SHA1_3DES_3KEY
        | oids::PBE_SHA1_3DES_2KEY
        | oids::PBE_SHA1_RC2_40
        | oids::PBE_SHA1_RC2_128) => {
            let p: Pkcs12PbeParams<'_> = params
                .decode_as()
                .map_err(Pkcs12Error::malformed("PKCS#12 PBE parameters"))?;
            let salt = p.salt.as_bytes();
            let key_len = match oid {
                oids::PBE_SHA1_3DES_3KEY => 24,
                oids::PBE_SHA1_3DES_2KEY | oids::PBE_SHA1_RC2_128 => 16,
                _ => 5,
            };
            let key = pkcs12_kdf::<Sha1>(password, salt, KdfPurpose::Key, p.iterations, key_len);
            let iv = pkcs12_kdf::<Sha1>(password, salt, KdfPurpose::Iv, p.iterations, 8);
            match oid {
                oids::PBE_SHA1_3DES_3KEY => cbc_decrypt::<TdesEde3>(&key, &iv, ciphertext),
                oids::PBE_SHA1_3DES_2KEY => cbc_decrypt::<TdesEde2>(&key, &iv, ciphertext),
                _ => {
                    // RC2 with the effective key length equal to the key length (40 or 128 bits).
                    let cipher = Rc2::new_from_slice(&key)
                        .map_err(|_| Pkcs12Error::Invalid("RC2 key length"))?;
                    cbc_decrypt_with(cipher, &iv, ciphertext)
                }
            }
        }
        oid => Err(Pkcs12Error::UnsupportedAlgorithm {
            kind: "encryption",
            oid,
        }),
    }
}

/// PBES2 takes the password as raw bytes, so the empty password is zero bytes
/// whatever encoding the PKCS#12 MAC used.
fn pbes2_decrypt(p: &Pbes2Params<'_>, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if p.key_derivation_func.oid != oids::PBKDF2 {
        return Err(Pkcs12Error::UnsupportedAlgorithm {
            kind: "key derivation",
            oid: p.key_derivation_func.oid,
        });
    }
    let kdf: Pbkdf2Params<'_> = p
        .key_derivation_func
        .parameters
        .ok_or(Pkcs12Error::Invalid("PBKDF2 has no parameters"))?
        .decode_as()
        .map_err(Pkcs12Error::malformed("PBKDF2 parameters"))?;
    let enc = &p.encryption_scheme;
    let key_len = match enc.oid {
        oids::AES128_CBC => 16,
        oids::AES192_CBC | oids::DES_EDE3_CBC => 24,
        oids::AES256_CBC => 32,
        oid => {
            return Err(Pkcs12Error::UnsupportedAlgorithm {
                kind: "encryption",
                oid,
            });
        }
    };
    if kdf.key_length.is_some_and(|l| l as usize != key_len) {
        return Err(Pkcs12Error::Invalid(
            "PBKDF2 key length does not match the cipher",
        ));
    }
    let iv: OctetStringRef<'_> = enc
        .parameters
        .ok_or(Pkcs12Error::Invalid("cipher has no IV"))?
        .decode_as()
        .map_err(Pkcs12Error::malformed("cipher IV"))?;
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    let salt = kdf.salt.as_bytes();
    let rounds = kdf.iteration_count;
    let prf = kdf.prf.map_or(oids::HMAC_SHA1, |a| a.oid);
    match prf {
        oids::HMAC_SHA1 => pbkdf2::pbkdf2_hmac::<Sha1>(&[], salt, rounds, &mut key),
        oids::HMAC_SHA224 => pbkdf2::pbkdf2_hmac::<Sha224>(&[], salt, rounds, &mut key),
        oids::HMAC_SHA256 => pbkdf2::pbkdf2_hmac::<Sha256>(&[], salt, rounds, &mut key),
        oids::HMAC_SHA384 => pbkdf2::pbkdf2_hmac::<Sha384>(&[], salt, rounds, &mut key),
        oids::HMAC_SHA512 => pbkdf2::pbkdf2_hmac::<Sha512>(&[], salt, rounds, &mut key),
        oid => return Err(Pkcs12Error::UnsupportedAlgorithm { kind: "PRF", oid }),
    }
    let iv = iv.as_bytes();
    match enc.oid {
        oids::AES128_CBC => cbc_decrypt::<Aes128>(&key, iv, ciphertext),
        oids::AES192_CBC => cbc_decrypt::<Aes192>(&key, iv, ciphertext),
        oids::AES256_CBC => cbc_decrypt::<Aes256>(&key, iv, ciphertext),
        _ => cbc_decrypt::<TdesEde3>(&key, iv, ciphertext),
    }
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>>
where
    C: BlockCipher + cbc::cipher::BlockDecrypt + KeyInit,
{
    let cipher = C::new_from_slice(key).map_err(|_| Pkcs12Error::Invalid("cipher key length"))?;
    cbc_decrypt_with(cipher, iv, ciphertext)
}

fn cbc_decrypt_with<C>(cipher: C, iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>>
where
    C: BlockCipher + cbc::cipher::BlockDecrypt,
{
    let dec = cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv)
        .map_err(|_| Pkcs12Error::Invalid("cipher IV length"))?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = dec
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| Pkcs12Error::DecryptionFailed)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// One key of a PFX to write, with the `localKeyID` pairing it to its certificate.
pub(crate) struct KeyEntry<'a> {
    /// PKCS#8 `PrivateKeyInfo` DER.
    pub(crate) pkcs8: &'a [u8],
    /// `localKeyID` attribute value.
    pub(crate) local_key_id: Option<Vec<u8>>,
}

/// One certificate of a PFX to write.
pub(crate) struct CertEntry<'a> {
    /// X.509 DER.
    pub(crate) der: &'a [u8],
    /// `localKeyID` attribute value.
    pub(crate) local_key_id: Option<Vec<u8>>,
}

const WRITE_ITERATIONS: u32 = 2000;

/// Writes a PFX with the empty password in the layout Key Vault itself exports:
/// the keys as 3DES `pkcs8ShroudedKeyBag`s in a `data` ContentInfo, the
/// certificates 3DES-encrypted in an `encryptedData` ContentInfo, and an
/// HMAC-SHA-1 MAC. These legacy algorithms are the ones every PKCS#12 reader
/// accepts (including Go's `x/crypto/pkcs12`); with an empty password they are
/// an encoding, not protection.
///
/// Salts are derived from the content instead of a random source so the
/// function stays pure and the same input renders the same bytes (no spurious
/// file rotations). Salts only matter for password secrecy, which an empty
/// password does not have.
pub(crate) fn encode_pkcs12(keys: &[KeyEntry<'_>], certs: &[CertEntry<'_>]) -> Result<Vec<u8>> {
    encode_pkcs12_with_password(keys, certs, EMPTY_PASSWORDS[0])
}

pub(crate) fn encode_pkcs12_with_password(
    keys: &[KeyEntry<'_>],
    certs: &[CertEntry<'_>],
    password: &[u8],
) -> Result<Vec<u8>> {
    let mut seed = Sha256::new();
    for k in keys {
        seed.update(k.pkcs8);
    }
    for c in certs {
        seed.update(c.der);
    }
    let seed = seed.finalize();
    let salt = |label: &str, n: usize| -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update(seed);
        h.finalize()[..n].to_vec()
    };

    // Key bags.
    let mut key_bags: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let key_salt = salt(&format!("key-{i}"), 8);
        let encrypted = pbe_3des_encrypt(password, &key_salt, k.pkcs8)?;
        let params = Pkcs12PbeParams {
            salt: OctetStringRef::new(&key_salt).map_err(Pkcs12Error::malformed("salt"))?,
            iterations: WRITE_ITERATIONS,
        }
        .to_der()
        .map_err(Pkcs12Error::malformed("PBE parameters"))?;
        let epki = EncryptedPrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: oids::PBE_SHA1_3DES_3KEY,
                parameters: Some(AnyRef::from_der(&params).map_err(Pkcs12Error::malformed("PBE"))?),
            },
            encrypted_data: OctetStringRef::new(&encrypted)
                .map_err(Pkcs12Error::malformed("key"))?,
        }
        .to_der()
        .map_err(Pkcs12Error::malformed("EncryptedPrivateKeyInfo"))?;
        key_bags.push(Zeroizing::new(encode_bag(
            oids::SHROUDED_KEY_BAG,
            &epki,
            k.local_key_id.as_deref(),
        )?));
    }
    let key_safe = encode_sequence_of(&key_bags)?;

    let mut cert_bags: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for c in certs {
        let bag = CertBag {
            cert_id: oids::X509_CERTIFICATE,
            cert_value: OctetStringRef::new(c.der).map_err(Pkcs12Error::malformed("cert"))?,
        }
        .to_der()
        .map_err(Pkcs12Error::malformed("CertBag"))?;
        cert_bags.push(Zeroizing::new(encode_bag(
            oids::CERT_BAG,
            &bag,
            c.local_key_id.as_deref(),
        )?));
    }
    let cert_safe = encode_sequence_of(&cert_bags)?;

    let key_ci = {
        let octets = OctetStringRef::new(&key_safe).map_err(Pkcs12Error::malformed("data"))?;
        let octets = octets.to_der().map_err(Pkcs12Error::malformed("data"))?;
        ContentInfo {
            content_type: oids::DATA,
            content: Some(AnyRef::from_der(&octets).map_err(Pkcs12Error::malformed("data"))?),
        }
        .to_der()
        .map_err(Pkcs12Error::malformed("ContentInfo"))?
    };
    let cert_salt = salt("certs", 8);
    let cert_cipher = pbe_3des_encrypt(password, &cert_salt, &cert_safe)?;
    let cert_params = Pkcs12PbeParams {
        salt: OctetStringRef::new(&cert_salt).map_err(Pkcs12Error::malformed("salt"))?,
        iterations: WRITE_ITERATIONS,
    }
    .to_der()
    .map_err(Pkcs12Error::malformed("PBE parameters"))?;
    let ed = EncryptedData {
        version: 0,
        encrypted_content_info: EncryptedContentInfo {
            content_type: oids::DATA,
            algorithm: AlgorithmIdentifierRef {
                oid: oids::PBE_SHA1_3DES_3KEY,
                parameters: Some(
                    AnyRef::from_der(&cert_params).map_err(Pkcs12Error::malformed("PBE"))?,
                ),
            },
            encrypted_content: Some(
                OctetStringRef::new(&cert_cipher).map_err(Pkcs12Error::malformed("certs"))?,
            ),
        },
    }
    .to_der()
    .map_err(Pkcs12Error::malformed("EncryptedData"))?;
    let cert_ci = ContentInfo {
        content_type: oids::ENCRYPTED_DATA,
        content: Some(AnyRef::from_der(&ed).map_err(Pkcs12Error::malformed("EncryptedData"))?),
    }
    .to_der()
    .map_err(Pkcs12Error::malformed("ContentInfo"))?;

    let mut infos: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    if !keys.is_empty() {
        infos.push(Zeroizing::new(key_ci));
    }
    infos.push(Zeroizing::new(cert_ci));
    let auth_safe = encode_sequence_of(&infos)?;

    let mac_salt = salt("mac", 20);
    let mac = compute_mac_sha1(password, &mac_salt, WRITE_ITERATIONS, &auth_safe)?;
    let auth_octets = OctetStringRef::new(&auth_safe)
        .map_err(Pkcs12Error::malformed("authSafe"))?
        .to_der()
        .map_err(Pkcs12Error::malformed("authSafe"))?;
    let null = der::asn1::Null
        .to_der()
        .map_err(Pkcs12Error::malformed("NULL"))?;
    let pfx = Pfx {
        version: 3,
        auth_safe: ContentInfo {
            content_type: oids::DATA,
            content: Some(
                AnyRef::from_der(&auth_octets).map_err(Pkcs12Error::malformed("authSafe"))?,
            ),
        },
        mac_data: Some(MacData {
            mac: DigestInfo {
                algorithm: AlgorithmIdentifierRef {
                    oid: oids::SHA1,
                    parameters: Some(
                        AnyRef::from_der(&null).map_err(Pkcs12Error::malformed("NULL"))?,
                    ),
                },
                digest: OctetStringRef::new(&mac).map_err(Pkcs12Error::malformed("MAC"))?,
            },
            mac_salt: OctetStringRef::new(&mac_salt).map_err(Pkcs12Error::malformed("MAC salt"))?,
            iterations: Some(WRITE_ITERATIONS),
        }),
    };
    pfx.to_der().map_err(Pkcs12Error::malformed("PFX"))
}

fn encode_bag(
    bag_id: ObjectIdentifier,
    value: &[u8],
    local_key_id: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let value = AnyRef::from_der(value).map_err(Pkcs12Error::malformed("bag value"))?;
    let attr_der;
    let attrs = match local_key_id {
        Some(id) => {
            let id_der = OctetStringRef::new(id)
                .map_err(Pkcs12Error::malformed("localKeyID"))?
                .to_der()
                .map_err(Pkcs12Error::malformed("localKeyID"))?;
            let mut values = SetOfVec::new();
            values
                .insert(AnyRef::from_der(&id_der).map_err(Pkcs12Error::malformed("localKeyID"))?)
                .map_err(Pkcs12Error::malformed("localKeyID"))?;
            let mut set = SetOfVec::new();
            set.insert(Attribute {
                oid: oids::LOCAL_KEY_ID,
                values,
            })
            .map_err(Pkcs12Error::malformed("attributes"))?;
            attr_der = set.to_der().map_err(Pkcs12Error::malformed("attributes"))?;
            Some(AnyRef::from_der(&attr_der).map_err(Pkcs12Error::malformed("attributes"))?)
        }
        None => None,
    };
    SafeBag {
        bag_id,
        bag_value: value,
        bag_attributes: attrs,
    }
    .to_der()
    .map_err(Pkcs12Error::malformed("SafeBag"))
}

/// DER `SEQUENCE OF` the already-encoded elements.
fn encode_sequence_of(elements: &[Zeroizing<Vec<u8>>]) -> Result<Vec<u8>> {
    let anys = elements
        .iter()
        .map(|e| AnyRef::from_der(e))
        .collect::<der::Result<Vec<_>>>()
        .map_err(Pkcs12Error::malformed("SEQUENCE OF"))?;
    anys.to_der().map_err(Pkcs12Error::malformed("SEQUENCE OF"))
}

fn pbe_3des_encrypt(password: &[u8], salt: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = pkcs12_kdf::<Sha1>(password, salt, KdfPurpose::Key, WRITE_ITERATIONS, 24);
    let iv = pkcs12_kdf::<Sha1>(password, salt, KdfPurpose::Iv, WRITE_ITERATIONS, 8);
    let enc = cbc::Encryptor::<TdesEde3>::new_from_slices(&key, &iv)
        .map_err(|_| Pkcs12Error::Invalid("cipher key length"))?;
    // PKCS#7 always adds 1..=8 bytes of padding.
    let mut buf = vec![0u8; plaintext.len() + 8];
    buf[..plaintext.len()].copy_from_slice(plaintext);
    let len = enc
        .encrypt_padded_mut::<Pkcs7>(&mut buf, plaintext.len())
        .map_err(|_| Pkcs12Error::Invalid("cipher padding"))?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_matches_known_vector() {
        // Cross-checked against OpenSSL's PKCS12_key_gen_uni: password "smeg"
        // (BMP with terminator), salt 0A58CF64530D823F, 1 iteration, ID 1, 24 bytes.
        let pw: Vec<u8> = "smeg"
            .encode_utf16()
            .flat_map(|c| c.to_be_bytes())
            .chain([0, 0])
            .collect();
        let salt = hex::decode("0A58CF64530D823F").unwrap();
        let key = pkcs12_kdf::<Sha1>(&pw, &salt, KdfPurpose::Key, 1, 24);
        assert_eq!(
            hex::encode_upper(&*key),
            "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3"
        );
        let iv = pkcs12_kdf::<Sha1>(&pw, &salt, KdfPurpose::Iv, 1, 8);
        assert_eq!(hex::encode_upper(&*iv), "79993DFE048D3B76");
    }

    #[test]
    fn roundtrip_with_both_empty_password_encodings() {
        let cert = b"\x30\x03\x02\x01\x05"; // any DER value round-trips through a certBag
        let key = b"\x30\x03\x02\x01\x07";
        for pw in EMPTY_PASSWORDS {
            let pfx = encode_pkcs12_with_password(
                &[KeyEntry {
                    pkcs8: key,
                    local_key_id: Some(vec![1, 0, 0, 0]),
                }],
                &[CertEntry {
                    der: cert,
                    local_key_id: Some(vec![1, 0, 0, 0]),
                }],
                pw,
            )
            .unwrap();
            let out = decode_pkcs12(&pfx).unwrap();
            assert_eq!(out.keys.len(), 1);
            assert_eq!(out.keys[0].as_slice(), key);
            assert_eq!(out.certs, vec![cert.to_vec()]);
        }
    }

    #[test]
    fn non_empty_password_is_rejected() {
        let pfx = encode_pkcs12_with_password(
            &[],
            &[CertEntry {
                der: b"\x05\x00",
                local_key_id: None,
            }],
            b"\0s\0\0",
        )
        .unwrap();
        assert!(matches!(
            decode_pkcs12(&pfx),
            Err(Pkcs12Error::WrongPassword)
        ));
    }

    #[test]
    fn garbage_is_malformed_not_panic() {
        for input in [&b""[..], b"\x30\x00", b"\x30\x80\x00\x00", b"\xff\xff\xff"] {
            assert!(decode_pkcs12(input).is_err());
        }
    }
}
