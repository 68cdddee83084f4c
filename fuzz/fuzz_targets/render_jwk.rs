//! JSON Web Keys (the `key` member of a Key Vault key bundle) to `render_key`,
//! and the certificate `cer` member to `render_certificate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_azure_provider::render::{Jwk, render_certificate, render_key};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // A whole bundle ({"key": {...}}) or a bare JWK.
    let key = value.get("key").unwrap_or(&value);
    let field = |name: &str| key.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let jwk = Jwk {
        kty: field("kty"),
        crv: field("crv"),
        n: field("n"),
        e: field("e"),
        x: field("x"),
        y: field("y"),
    };
    let _ = render_key(&jwk);
    if let Some(cer) = value.get("cer").and_then(|v| v.as_str()) {
        let _ = render_certificate(cer);
    }
});
