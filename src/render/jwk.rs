//! JWK -> SubjectPublicKeyInfo PEM for `objectType: key` (azure-behaviour.md §8.6).

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use der::asn1::{AnyRef, UintRef};
use der::{Decode, Encode};
use zeroize::Zeroizing;

use super::pem::{Curve, OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION, encode_pem, encode_spki};
use super::{Jwk, RenderError};
use crate::secret::SecretBytes;

/// Key Vault sends JWK members as unpadded base64url; padding is tolerated.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn field(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, RenderError> {
    let value = value.ok_or(RenderError::MissingKeyField(name))?;
    let bytes = BASE64URL
        .decode(value)
        .map_err(|_| RenderError::InvalidKeyField(name))?;
    if bytes.is_empty() {
        return Err(RenderError::InvalidKeyField(name));
    }
    Ok(bytes)
}

/// Renders the public half of a Key Vault JWK as a `PUBLIC KEY` PEM block.
pub(crate) fn render_jwk(jwk: &Jwk) -> Result<SecretBytes, RenderError> {
    let kty = jwk
        .kty
        .as_deref()
        .ok_or(RenderError::MissingKeyField("kty"))?;
    let spki = match kty {
        "RSA" | "RSA-HSM" => rsa_spki(jwk)?,
        "EC" | "EC-HSM" => ec_spki(jwk)?,
        other => return Err(RenderError::UnsupportedKeyType(other.to_owned())),
    };
    let pem = encode_pem("PUBLIC KEY", &spki);
    Ok(SecretBytes::new(pem.as_bytes().to_vec()))
}

fn rsa_spki(jwk: &Jwk) -> Result<Vec<u8>, RenderError> {
    let n = field(jwk.n.as_deref(), "n")?;
    let e = field(jwk.e.as_deref(), "e")?;
    // UintRef strips leading zeros and adds the sign byte DER needs.
    let public = pkcs1::RsaPublicKey {
        modulus: UintRef::new(&n).map_err(|_| RenderError::InvalidKeyField("n"))?,
        public_exponent: UintRef::new(&e).map_err(|_| RenderError::InvalidKeyField("e"))?,
    }
    .to_der()
    .map_err(RenderError::Encode)?;
    let null = der::asn1::Null.to_der().map_err(RenderError::Encode)?;
    encode_spki(
        OID_RSA_ENCRYPTION,
        Some(AnyRef::from_der(&null).map_err(RenderError::Encode)?),
        &public,
    )
}

fn ec_spki(jwk: &Jwk) -> Result<Vec<u8>, RenderError> {
    let crv = jwk
        .crv
        .as_deref()
        .ok_or(RenderError::MissingKeyField("crv"))?;
    let curve = match crv {
        "P-256" => Curve::P256,
        "P-384" => Curve::P384,
        "P-521" => Curve::P521,
        other => return Err(RenderError::UnsupportedCurve(other.to_owned())),
    };
    let x = field(jwk.x.as_deref(), "x")?;
    let y = field(jwk.y.as_deref(), "y")?;
    let size = curve.size();
    let mut point = Zeroizing::new(Vec::with_capacity(1 + 2 * size));
    point.push(0x04);
    for (coord, name) in [(&x, "x"), (&y, "y")] {
        // Coordinates are big integers: drop extra leading zeros, then left-pad.
        let start = coord.iter().position(|b| *b != 0).unwrap_or(coord.len());
        let digits = &coord[start..];
        if digits.len() > size {
            return Err(RenderError::InvalidKeyField(name));
        }
        point.extend(std::iter::repeat_n(0u8, size - digits.len()));
        point.extend_from_slice(digits);
    }
    if !curve.check_point(&point) {
        return Err(RenderError::InvalidEcPoint(crv.to_owned()));
    }
    let curve_oid = curve.oid().to_der().map_err(RenderError::Encode)?;
    encode_spki(
        OID_EC_PUBLIC_KEY,
        Some(AnyRef::from_der(&curve_oid).map_err(RenderError::Encode)?),
        &point,
    )
}
