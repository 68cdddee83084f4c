//! PKCS#12 input to `render_secret` (certificate-backed, `application/x-pkcs12`).
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use rust_azure_provider::mount::params::{ObjectEncoding, ObjectFormat};
use rust_azure_provider::render::{CONTENT_TYPE_PKCS12, RenderOptions, render_secret};
use rust_azure_provider::secret::SecretString;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, der)) = data.split_first() else {
        return;
    };
    // Most inputs are DER (base64-encoded as Key Vault stores it); some reach the
    // base64 decoder as raw text.
    let value = if mode & 0x80 == 0 {
        base64::engine::general_purpose::STANDARD.encode(der)
    } else {
        String::from_utf8_lossy(der).into_owned()
    };
    let opts = RenderOptions {
        construct_pem_chain: mode & 1 != 0,
        write_cert_and_key_in_separate_files: mode & 2 != 0,
    };
    let format = if mode & 4 != 0 { ObjectFormat::Pfx } else { ObjectFormat::Pem };
    let _ = render_secret(
        SecretString::new(value),
        Some(CONTENT_TYPE_PKCS12),
        true,
        format,
        ObjectEncoding::Utf8,
        &opts,
    );
});
