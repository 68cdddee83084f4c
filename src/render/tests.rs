//! Rendering tests against real Key Vault responses, committed PKCS#12 fixtures
//! and outputs of a Go program that renders like the reference (tests/fixtures/README.md).

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pem::{PrivateKey, parse_pem};
use super::pkcs12::decode_pkcs12;
use super::*;
use crate::error::ErrorClass;

fn keyvault_dir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/keyvault-responses");
    assert!(
        dir.is_dir(),
        "Key Vault response fixtures missing: {} (shared/ must sit beside the checkout)",
        dir.display()
    );
    dir
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn kv_json(name: &str) -> serde_json::Value {
    let path = keyvault_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn reference(name: &str) -> String {
    let path = fixtures_dir().join("reference").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn p12(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join("pkcs12").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn opts(chain: bool, split: bool) -> RenderOptions {
    RenderOptions {
        construct_pem_chain: chain,
        write_cert_and_key_in_separate_files: split,
    }
}

/// Renders a Key Vault secret body the way the Mount pipeline will.
fn render_kv_secret(
    body: &serde_json::Value,
    format: ObjectFormat,
    encoding: ObjectEncoding,
    o: RenderOptions,
) -> Result<Rendered, RenderError> {
    let value = body["value"].as_str().unwrap().to_owned();
    let kid = body["kid"].as_str().is_some_and(|k| !k.is_empty());
    render_secret(
        SecretString::new(value),
        body["contentType"].as_str(),
        kid,
        format,
        encoding,
        &o,
    )
}

fn text(b: &SecretBytes) -> &str {
    std::str::from_utf8(b.expose()).unwrap()
}

/// Checks PEM output: keys first, then certificates; key matches the first
/// certificate; returns the certificates' subjects in order.
fn check_pem(pem_text: &str) -> Vec<String> {
    for line in pem_text.lines() {
        assert!(line.len() <= 64, "line longer than 64: {line}");
        assert!(!line.is_empty(), "blank line in PEM output");
        assert!(!line.contains(':'), "PEM header in output");
    }
    assert!(pem_text.ends_with('\n') && !pem_text.contains('\r'));
    let blocks = parse_pem(pem_text);
    let first_cert = blocks
        .iter()
        .position(|b| b.label == "CERTIFICATE")
        .unwrap();
    assert!(
        blocks[..first_cert]
            .iter()
            .all(|b| b.label == "PRIVATE KEY")
    );
    assert!(
        blocks[first_cert..]
            .iter()
            .all(|b| b.label == "CERTIFICATE")
    );
    let certs: Vec<X509Certificate<'_>> = blocks[first_cert..]
        .iter()
        .map(|b| X509Certificate::from_der(&b.der).unwrap().1)
        .collect();
    for key in &blocks[..first_cert] {
        let spki = PrivateKey::parse(&key.der).unwrap().public_spki().unwrap();
        assert_eq!(
            spki, certs[0].tbs_certificate.subject_pki.raw,
            "key does not match leaf"
        );
    }
    certs.iter().map(|c| c.subject().to_string()).collect()
}

fn assert_chain_order(pem_text: &str) {
    let blocks = parse_pem(pem_text);
    let certs: Vec<X509Certificate<'_>> = blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| X509Certificate::from_der(&b.der).unwrap().1)
        .collect();
    for pair in certs.windows(2) {
        assert_eq!(
            pair[0].issuer(),
            pair[1].subject(),
            "not leaf -> root order"
        );
    }
    let root = certs.last().unwrap();
    assert_eq!(
        root.issuer(),
        root.subject(),
        "chain does not end at a root"
    );
}

#[test]
fn keyvault_pkcs12_secrets_match_reference_bytes() {
    for name in [
        "secret-cert-backed-pkcs12-rsa",
        "secret-cert-backed-pkcs12-rsa-api-7.0",
        "secret-cert-backed-pkcs12-ec-p384",
    ] {
        let body = kv_json(&format!("{name}.json"));
        for chain in [true, false] {
            let out = render_kv_secret(
                &body,
                ObjectFormat::Pem,
                ObjectEncoding::Utf8,
                opts(chain, false),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(text(&out.main), reference(&format!("{name}.pem")), "{name}");
            assert_eq!(check_pem(text(&out.main)).len(), 1);
            assert!(out.crt.is_none() && out.key.is_none() && out.warnings.is_empty());
        }
    }
}

#[test]
fn keyvault_pkcs12_pfx_format_passes_value_through() {
    let body = kv_json("secret-cert-backed-pkcs12-rsa.json");
    let value = body["value"].as_str().unwrap();
    let out = render_kv_secret(
        &body,
        ObjectFormat::Pfx,
        ObjectEncoding::Utf8,
        opts(true, false),
    )
    .unwrap();
    assert_eq!(text(&out.main), value);
    let out = render_kv_secret(
        &body,
        ObjectFormat::Pfx,
        ObjectEncoding::Base64,
        opts(true, false),
    )
    .unwrap();
    assert_eq!(
        out.main.expose(),
        STANDARD.decode(value).unwrap().as_slice()
    );
}

#[test]
fn keyvault_pem_secrets_pass_through_and_split() {
    for name in [
        "secret-cert-backed-pem-rsa",
        "secret-cert-backed-pem-ec-p256",
    ] {
        let body = kv_json(&format!("{name}.json"));
        let value = body["value"].as_str().unwrap();
        let out = render_kv_secret(
            &body,
            ObjectFormat::Pem,
            ObjectEncoding::Utf8,
            opts(true, true),
        )
        .unwrap();
        assert_eq!(text(&out.main), value, "{name}: PEM must be unchanged");
        check_pem(value);
        let crt = text(out.crt.as_ref().unwrap());
        let key = text(out.key.as_ref().unwrap());
        assert!(crt.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!crt.contains("PRIVATE KEY"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(!key.contains("CERTIFICATE"));
        // Key Vault's PEM is already canonical, so the split is a partition of it.
        assert_eq!(format!("{key}{crt}"), value);
    }
}

#[test]
fn keyvault_pem_secret_as_pfx_builds_passwordless_pkcs12() {
    for name in [
        "secret-cert-backed-pem-rsa",
        "secret-cert-backed-pem-ec-p256",
    ] {
        let body = kv_json(&format!("{name}.json"));
        let value = body["value"].as_str().unwrap();
        let out = render_kv_secret(
            &body,
            ObjectFormat::Pfx,
            ObjectEncoding::Base64,
            opts(true, true),
        )
        .unwrap();
        let contents = decode_pkcs12(out.main.expose()).unwrap();
        let blocks = parse_pem(value);
        assert_eq!(contents.keys.len(), 1);
        assert_eq!(contents.certs.len(), 1);
        assert_eq!(
            contents.keys[0].as_slice(),
            PrivateKey::parse(&blocks[0].der)
                .unwrap()
                .to_pkcs8()
                .unwrap()
                .as_slice()
        );
        assert_eq!(contents.certs[0], blocks[1].der.as_slice());
        // The PFX renders back to the stored PEM, its key normalised as
        // Go's MarshalPKCS8PrivateKey writes it (the EC key loses its
        // redundant curve parameters and its PKCS#8 attribute).
        let mut warnings = Vec::new();
        let back = super::pem::pkcs12_to_pem(out.main.expose(), true, &mut warnings).unwrap();
        let normalised = format!(
            "{}{}",
            super::pem::encode_pem("PRIVATE KEY", &contents.keys[0]).as_str(),
            super::pem::encode_pem("CERTIFICATE", &blocks[1].der).as_str()
        );
        assert_eq!(back.as_str(), normalised, "{name}");
        if name.contains("rsa") {
            assert_eq!(
                back.as_str(),
                value,
                "{name}: the RSA key is already canonical"
            );
        }
        // .crt/.key are PEM even though the main file is a PFX (quirk #25).
        assert!(text(out.crt.as_ref().unwrap()).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(text(out.key.as_ref().unwrap()).starts_with("-----BEGIN PRIVATE KEY-----"));
        // Deterministic output: the same input renders the same bytes.
        let again = render_kv_secret(
            &body,
            ObjectFormat::Pfx,
            ObjectEncoding::Utf8,
            opts(true, false),
        )
        .unwrap();
        assert_eq!(
            again.main.expose(),
            STANDARD.encode(out.main.expose()).as_bytes()
        );
    }
}

#[test]
fn keyvault_pkcs12_pfx_with_split_files_derives_pem() {
    let body = kv_json("secret-cert-backed-pkcs12-ec-p384.json");
    let value = body["value"].as_str().unwrap();
    let out = render_kv_secret(
        &body,
        ObjectFormat::Pfx,
        ObjectEncoding::Base64,
        opts(true, true),
    )
    .unwrap();
    assert_eq!(
        out.main.expose(),
        STANDARD.decode(value).unwrap().as_slice()
    );
    let pem_text = reference("secret-cert-backed-pkcs12-ec-p384.pem");
    let (key, crt) = pem_text.split_at(pem_text.find("-----BEGIN CERTIFICATE").unwrap());
    assert_eq!(text(out.crt.as_ref().unwrap()), crt);
    assert_eq!(text(out.key.as_ref().unwrap()), key);
}

#[test]
fn keyvault_plain_secret_is_returned_as_is() {
    let body = kv_json("secret-plain.json");
    let value = body["value"].as_str().unwrap();
    let out = render_kv_secret(
        &body,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        opts(true, true),
    )
    .unwrap();
    assert_eq!(text(&out.main), value);
    assert!(out.crt.is_none() && out.key.is_none());
}

#[test]
fn kidless_pkcs12_is_not_converted() {
    // App Service exports: PFX stored as a plain secret (issue #1952).
    let body = kv_json("secret-cert-backed-pkcs12-rsa.json");
    let value = body["value"].as_str().unwrap();
    let out = render_secret(
        SecretString::from(value),
        Some(CONTENT_TYPE_PKCS12),
        false,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        &opts(true, true),
    )
    .unwrap();
    assert_eq!(text(&out.main), value);
    assert!(out.crt.is_none());
}

#[test]
fn keyvault_keys_match_reference_bytes() {
    for name in [
        "key-rsa",
        "key-ec-p256",
        "key-ec-p384",
        "key-ec-p384-cert-backed",
        "key-rsa-hsm",
        "key-ec-hsm-p256-release-policy",
        "key-rsa-hsm-managedhsm",
        "key-ec-hsm-p256-managedhsm",
    ] {
        let body = kv_json(&format!("{name}.json"));
        let k = &body["key"];
        let s = |f: &str| k[f].as_str().map(str::to_owned);
        let jwk = Jwk {
            kty: s("kty"),
            crv: s("crv"),
            n: s("n"),
            e: s("e"),
            x: s("x"),
            y: s("y"),
        };
        let out = render_key(&jwk).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text(&out), reference(&format!("{name}.pem")), "{name}");
        // Parse back: the SPKI describes the JWK's key.
        let blocks = parse_pem(text(&out));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, "PUBLIC KEY");
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&blocks[0].der).unwrap();
        let b64url = |f: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(k[f].as_str().unwrap())
                .unwrap()
        };
        match spki.parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                let strip = |b: &[u8]| {
                    b.iter()
                        .skip_while(|x| **x == 0)
                        .copied()
                        .collect::<Vec<_>>()
                };
                assert_eq!(strip(rsa.modulus), strip(&b64url("n")));
                assert_eq!(strip(rsa.exponent), strip(&b64url("e")));
            }
            x509_parser::public_key::PublicKey::EC(point) => {
                let mut expected = vec![4u8];
                expected.extend(b64url("x"));
                expected.extend(b64url("y"));
                assert_eq!(point.data(), expected.as_slice());
            }
            other => panic!("{name}: unexpected key {other:?}"),
        }
    }
}

#[test]
fn cert_backed_key_matches_its_certificate() {
    // The key half and the secret half of the same Key Vault certificate.
    let key = kv_json("key-ec-p384-cert-backed.json");
    let k = &key["key"];
    let s = |f: &str| k[f].as_str().map(str::to_owned);
    let out = render_key(&Jwk {
        kty: s("kty"),
        crv: s("crv"),
        x: s("x"),
        y: s("y"),
        ..Jwk::default()
    })
    .unwrap();
    let spki = parse_pem(text(&out)).remove(0).der;
    let cert = kv_json("certificate-ec-p384-versioned.json");
    let cer = STANDARD.decode(cert["cer"].as_str().unwrap()).unwrap();
    let (_, parsed) = X509Certificate::from_der(&cer).unwrap();
    assert_eq!(parsed.tbs_certificate.subject_pki.raw, spki.as_slice());
}

#[test]
fn keyvault_certificates_render_leaf_pem() {
    for name in [
        "certificate-rsa.json",
        "certificate-rsa-versioned.json",
        "certificate-ec-p384.json",
        "certificate-ec-p384-versioned.json",
        "certificate-ec-p256-versioned.json",
    ] {
        let body = kv_json(name);
        let cer = body["cer"].as_str().unwrap();
        let out = render_certificate(cer).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            cer.as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(text(&out), expected, "{name}");
        let blocks = parse_pem(text(&out));
        assert_eq!(blocks.len(), 1);
        X509Certificate::from_der(&blocks[0].der).unwrap();
    }
    let err = render_certificate("not base64!").unwrap_err();
    assert_eq!(err.class(), ErrorClass::Internal);
    let err = render_certificate("AAAA").unwrap_err();
    assert_eq!(err.code(), "certificate_malformed");
}

fn render_p12(bytes: &[u8], chain: bool) -> Result<Rendered, RenderError> {
    render_secret(
        SecretString::new(STANDARD.encode(bytes)),
        Some(CONTENT_TYPE_PKCS12),
        true,
        ObjectFormat::Pem,
        ObjectEncoding::Utf8,
        &opts(chain, false),
    )
}

#[test]
fn generated_chains_in_every_encryption_render_identically() {
    for kind in ["rsa", "ec"] {
        let chained = reference(&format!("{kind}-chain-legacy-rc2.chain.pem"));
        let unchained = reference(&format!("{kind}-chain-legacy-rc2.nochain.pem"));
        assert_chain_order(&chained);
        let subjects = check_pem(&unchained);
        assert_eq!(
            subjects,
            [
                "CN=leaf.example".to_owned(),
                format!("CN={kind} test root"),
                format!("CN={kind} test intermediate")
            ],
            "the fixture must be packed out of chain order"
        );
        for variant in ["legacy-rc2", "legacy-3des", "aes256", "keybag"] {
            let file = format!("{kind}-chain-{variant}.p12");
            let bytes = p12(&file);
            let on = render_p12(&bytes, true).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(text(&on.main), chained, "{file} with chain construction");
            assert!(on.warnings.is_empty());
            let off = render_p12(&bytes, false).unwrap();
            assert_eq!(
                text(&off.main),
                unchained,
                "{file} without chain construction"
            );
        }
        // The Go oracle agrees for both legacy files (it cannot read the others).
        assert_eq!(
            chained,
            reference(&format!("{kind}-chain-legacy-3des.chain.pem"))
        );
        assert_eq!(
            check_pem(&chained),
            [
                "CN=leaf.example".to_owned(),
                format!("CN={kind} test intermediate"),
                format!("CN={kind} test root")
            ]
        );
        // Same certificates, in the order OpenSSL was given them (leaf, intermediate, root).
        let expected = std::fs::read_to_string(
            fixtures_dir().join(format!("pkcs12/{kind}-chain-expected.pem")),
        )
        .unwrap();
        let ders = |t: &str| {
            parse_pem(t)
                .into_iter()
                .filter(|b| b.label == "CERTIFICATE")
                .map(|b| b.der.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(ders(&chained), ders(&expected));
    }
}

#[test]
fn incomplete_chain_falls_back_to_pfx_order() {
    for kind in ["rsa", "ec"] {
        let bytes = p12(&format!("{kind}-chain-bare-leaf.p12"));
        let on = render_p12(&bytes, true).unwrap();
        let off = render_p12(&bytes, false).unwrap();
        assert_eq!(on.main.expose(), off.main.expose());
        assert_eq!(
            on.warnings,
            vec![RenderWarning::IncompleteChain {
                certificates: 3,
                covered: 1
            }]
        );
        assert_eq!(check_pem(text(&on.main))[0], "CN=bare.example");
    }
}

#[test]
fn password_protected_pfx_is_rejected() {
    for kind in ["rsa", "ec"] {
        let err = render_p12(&p12(&format!("{kind}-password.p12")), true).unwrap_err();
        assert!(
            matches!(err, RenderError::Pkcs12(Pkcs12Error::WrongPassword)),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::FailedPrecondition);
        assert!(err.to_string().contains("empty password"));
    }
}

#[test]
fn chain_order_from_pfx_written_out_of_order() {
    // Our own writer packs root, leaf, intermediate with a key last in the
    // safe contents; chain construction restores leaf -> root.
    let pem_text = reference("rsa-chain-legacy-rc2.chain.pem");
    let blocks = parse_pem(&pem_text);
    let key = blocks[0].der.to_vec();
    let (leaf, inter, root) = (&blocks[1].der, &blocks[2].der, &blocks[3].der);
    let pfx = super::pkcs12::encode_pkcs12(
        &[super::pkcs12::KeyEntry {
            pkcs8: &key,
            local_key_id: None,
        }],
        &[root, leaf, inter].map(|d| super::pkcs12::CertEntry {
            der: d,
            local_key_id: None,
        }),
    )
    .unwrap();
    assert_eq!(text(&render_p12(&pfx, true).unwrap().main), pem_text);
    let off = render_p12(&pfx, false).unwrap();
    assert_eq!(
        check_pem_subjects_only(text(&off.main)),
        [
            "CN=rsa test root",
            "CN=leaf.example",
            "CN=rsa test intermediate"
        ]
    );
}

fn check_pem_subjects_only(pem_text: &str) -> Vec<String> {
    parse_pem(pem_text)
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| {
            X509Certificate::from_der(&b.der)
                .unwrap()
                .1
                .subject()
                .to_string()
        })
        .collect()
}

#[test]
fn object_encodings() {
    let render = |v: &str, enc| {
        render_secret(
            SecretString::from(v),
            None,
            false,
            ObjectFormat::Pem,
            enc,
            &RenderOptions::default(),
        )
    };
    assert_eq!(
        render("héllo", ObjectEncoding::Utf8).unwrap().main.expose(),
        "héllo".as_bytes()
    );
    assert_eq!(
        render("aGVsbG8=", ObjectEncoding::Base64)
            .unwrap()
            .main
            .expose(),
        b"hello"
    );
    // Go's decoder skips line breaks.
    assert_eq!(
        render("aGVs\r\nbG8=", ObjectEncoding::Base64)
            .unwrap()
            .main
            .expose(),
        b"hello"
    );
    assert_eq!(
        render("68656C6c6f", ObjectEncoding::Hex)
            .unwrap()
            .main
            .expose(),
        b"hello"
    );
    assert_eq!(
        render("", ObjectEncoding::Base64).unwrap().main.expose(),
        b""
    );

    let secret = "-----BEGIN PRIVATE KEY-----s3cr3tv4lue";
    let err = render(secret, ObjectEncoding::Base64).unwrap_err();
    assert_eq!(err.class(), ErrorClass::FailedPrecondition);
    assert_eq!(err.code(), "object_encoding_invalid");
    let msg = err.to_string();
    assert!(
        msg.contains("base64") && msg.contains("input byte 0"),
        "{msg}"
    );
    assert!(!msg.contains("s3cr3t") && !format!("{err:?}").contains("s3cr3t"));
    // Padding is required.
    assert!(render("aGVsbG8", ObjectEncoding::Base64).is_err());
    let err = render("s3cr3t", ObjectEncoding::Hex).unwrap_err();
    assert!(err.to_string().contains("hex") && !err.to_string().contains("s3cr3t"));
    assert!(
        render("abc", ObjectEncoding::Hex)
            .unwrap_err()
            .to_string()
            .contains("odd length")
    );
}

#[test]
fn encoding_applies_to_main_file_only() {
    let body = kv_json("secret-cert-backed-pem-rsa.json");
    // A PEM value cannot be base64-decoded: the main file fails, as in the reference.
    let err = render_kv_secret(
        &body,
        ObjectFormat::Pem,
        ObjectEncoding::Base64,
        opts(true, true),
    )
    .unwrap_err();
    assert_eq!(err.code(), "object_encoding_invalid");
    // With hex-encoded content, only the main file is decoded.
    let value = body["value"].as_str().unwrap();
    let out = render_secret(
        SecretString::from(value),
        Some(CONTENT_TYPE_PEM),
        true,
        ObjectFormat::Pfx,
        ObjectEncoding::Base64,
        &opts(true, true),
    )
    .unwrap();
    assert!(decode_pkcs12(out.main.expose()).is_ok());
    assert!(text(out.crt.as_ref().unwrap()).starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn unknown_and_missing_content_types() {
    let render = |ct| {
        render_secret(
            SecretString::from("x"),
            ct,
            true,
            ObjectFormat::Pem,
            ObjectEncoding::Utf8,
            &RenderOptions::default(),
        )
    };
    let err = render(Some("text/plain")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to get certificate. unknown content type 'text/plain'"
    );
    assert_eq!(err.class(), ErrorClass::FailedPrecondition);
    // Content types are matched exactly, as the reference does.
    assert!(render(Some("application/X-PKCS12")).is_err());
    let err = render(None).unwrap_err();
    assert_eq!(err.code(), "content_type_missing");
    assert_eq!(err.class(), ErrorClass::FailedPrecondition);
    assert!(err.to_string().contains("no content type"));
    // Not base64 at all.
    let err = render(Some(CONTENT_TYPE_PKCS12)).unwrap_err();
    assert_eq!(err.code(), "pkcs12_invalid");
    // PEM content without any block, requested as pfx.
    let err = render_secret(
        SecretString::from("nothing here"),
        Some(CONTENT_TYPE_PEM),
        true,
        ObjectFormat::Pfx,
        ObjectEncoding::Utf8,
        &RenderOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "pem_empty");
}

#[test]
fn unsupported_keys_and_curves() {
    let err = render_key(&Jwk {
        kty: Some("oct-HSM".into()),
        ..Jwk::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to get key. key type 'oct-HSM' currently not supported"
    );
    assert_eq!(err.class(), ErrorClass::FailedPrecondition);

    let ec = |crv: &str, x: &str, y: &str| Jwk {
        kty: Some("EC".into()),
        crv: Some(crv.into()),
        x: Some(x.into()),
        y: Some(y.into()),
        ..Jwk::default()
    };
    let err = render_key(&ec("P-256K", "AA", "AA")).unwrap_err();
    assert_eq!(err.to_string(), "curve P-256K is not supported");
    assert_eq!(err.class(), ErrorClass::FailedPrecondition);

    // A real P-256 point with y altered is not on the curve.
    let body = kv_json("key-ec-p256.json");
    let x = body["key"]["x"].as_str().unwrap();
    let y = body["key"]["y"].as_str().unwrap();
    assert!(render_key(&ec("P-256", x, y)).is_ok());
    let err = render_key(&ec("P-256", x, x)).unwrap_err();
    assert!(matches!(err, RenderError::InvalidEcPoint(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Internal);
    // The right point on the wrong curve: wrong size.
    assert!(render_key(&ec("P-384", x, y)).is_err());
    // Coordinates with an extra leading zero byte are accepted (big integers).
    let pad = |c: &str| {
        let mut b = vec![0u8];
        b.extend(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .unwrap(),
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    assert_eq!(
        render_key(&ec("P-256", &pad(x), &pad(y))).unwrap().expose(),
        render_key(&ec("P-256", x, y)).unwrap().expose()
    );

    let err = render_key(&Jwk {
        kty: Some("RSA".into()),
        n: Some("AQAB".into()),
        ..Jwk::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key value is malformed: member 'e' is missing"
    );
    assert_eq!(err.class(), ErrorClass::Internal);
    let err = render_key(&Jwk::default()).unwrap_err();
    assert_eq!(err.code(), "key_malformed");
    let err = render_key(&ec("P-256", "!!", "AA")).unwrap_err();
    assert!(matches!(err, RenderError::InvalidKeyField("x")));
}

#[test]
fn rsa_modulus_leading_zeros_are_normalised() {
    let body = kv_json("key-rsa.json");
    let n = body["key"]["n"].as_str().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n)
        .unwrap();
    let mut padded = vec![0u8, 0u8];
    padded.extend(&raw);
    let jwk = |n: String| Jwk {
        kty: Some("RSA".into()),
        n: Some(n),
        e: Some("AQAB".into()),
        ..Jwk::default()
    };
    assert_eq!(
        render_key(&jwk(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(padded)
        ))
        .unwrap()
        .expose(),
        render_key(&jwk(n.to_owned())).unwrap().expose()
    );
    assert_eq!(
        text(&render_key(&jwk(n.to_owned())).unwrap()),
        reference("key-rsa.pem")
    );
}

#[test]
fn mutated_pkcs12_never_panics() {
    // Cheap deterministic fuzzing of the untrusted PKCS#12 parser.
    let inputs = [p12("ec-chain-legacy-rc2.p12"), p12("ec-chain-aes256.p12")];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for input in &inputs {
        for _ in 0..120 {
            let mut m = input.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            if next() % 5 == 0 {
                m.truncate((next() as usize) % m.len());
            }
            let _ = render_p12(&m, true);
        }
    }
}

#[test]
fn errors_are_classified() {
    assert_eq!(RenderError::NoLeaf.class(), ErrorClass::FailedPrecondition);
    assert_eq!(RenderError::ChainCycle.code(), "chain_cycle");
    assert_eq!(
        RenderError::UnsupportedCurve("P-256K".into()).code(),
        "curve_unsupported"
    );
}
