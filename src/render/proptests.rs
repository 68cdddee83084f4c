//! Property tests of the PEM layer and `render_secret`: DER -> PEM -> DER round-trips, splitting
//! keeps every block, and no input makes the parsers panic.

use proptest::prelude::*;

use super::pem::{encode_pem, parse_pem, split_pem};
use super::*;

fn label() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "CERTIFICATE",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "RSA PRIVATE KEY",
        "PUBLIC KEY",
    ])
}

proptest! {
    #[test]
    fn der_pem_der_round_trips(label in label(), der in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = encode_pem(label, &der);
        let blocks = parse_pem(&text);
        prop_assert_eq!(blocks.len(), 1);
        prop_assert_eq!(blocks[0].label.as_str(), label);
        prop_assert_eq!(&blocks[0].der[..], &der[..]);
        for line in text.lines() {
            prop_assert!(line.len() <= 64 || line.starts_with("-----"));
        }
    }

    #[test]
    fn split_keeps_every_block_in_order(
        blocks in prop::collection::vec((label(), prop::collection::vec(any::<u8>(), 1..200)), 0..6),
    ) {
        let text: String = blocks.iter().map(|(l, d)| encode_pem(l, d).to_string()).collect();
        let (crt, key) = split_pem(&text);
        let certs: Vec<_> = blocks.iter().filter(|(l, _)| *l == "CERTIFICATE").collect();
        let others: Vec<_> = blocks.iter().filter(|(l, _)| *l != "CERTIFICATE").collect();
        let got_certs = parse_pem(&crt);
        let got_others = parse_pem(&key);
        prop_assert_eq!(got_certs.len(), certs.len());
        prop_assert_eq!(got_others.len(), others.len());
        for (got, (l, d)) in got_certs.iter().zip(certs).chain(got_others.iter().zip(others)) {
            prop_assert_eq!(got.label.as_str(), *l);
            prop_assert_eq!(&got.der[..], &d[..]);
        }
    }

    #[test]
    fn parse_pem_never_panics(text in "(-----(BEGIN|END) [A-Z ]{0,12}-----|[A-Za-z0-9+/=: \\t\\r]{0,70}|\\n){0,40}") {
        let _ = parse_pem(&text);
        let _ = split_pem(&text);
    }

    #[test]
    fn base64_and_hex_encodings_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let opts = RenderOptions::default();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let out = render_secret(SecretString::new(b64), None, false, ObjectFormat::Pem, ObjectEncoding::Base64, &opts)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(out.main.expose(), &bytes[..]);
        let out = render_secret(SecretString::new(hex::encode(&bytes)), None, false, ObjectFormat::Pem, ObjectEncoding::Hex, &opts)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(out.main.expose(), &bytes[..]);
    }

    #[test]
    fn render_secret_never_panics(
        value in "\\PC{0,200}",
        content_type in prop::option::of(prop::sample::select(vec![CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, "text/plain", ""])),
        cert_backed in any::<bool>(),
        pfx in any::<bool>(),
        encoding in prop::sample::select(vec![ObjectEncoding::Utf8, ObjectEncoding::Base64, ObjectEncoding::Hex]),
        split in any::<bool>(),
        chain in any::<bool>(),
    ) {
        let opts = RenderOptions { construct_pem_chain: chain, write_cert_and_key_in_separate_files: split };
        let format = if pfx { ObjectFormat::Pfx } else { ObjectFormat::Pem };
        let _ = render_secret(SecretString::new(value), content_type, cert_backed, format, encoding, &opts);
    }

    #[test]
    fn render_key_never_panics(
        kty in prop::option::of(prop::sample::select(vec!["RSA", "RSA-HSM", "EC", "EC-HSM", "oct", ""])),
        crv in prop::option::of(prop::sample::select(vec!["P-256", "P-384", "P-521", "P-256K", "x"])),
        n in prop::option::of("[A-Za-z0-9_=-]{0,80}"),
        e in prop::option::of("[A-Za-z0-9_=-]{0,8}"),
        x in prop::option::of("[A-Za-z0-9_=-]{0,90}"),
        y in prop::option::of("[A-Za-z0-9_=-]{0,90}"),
    ) {
        let jwk = Jwk {
            kty: kty.map(str::to_owned),
            crv: crv.map(str::to_owned),
            n, e, x, y,
        };
        let _ = render_key(&jwk);
    }
}
