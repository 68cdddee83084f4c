//! PEM chain parsing, splitting into `.crt`/`.key`, PEM -> PKCS#12 and
//! `objectEncoding` decoding through `render_secret` (`application/x-pem-file`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_azure_provider::mount::params::{ObjectEncoding, ObjectFormat};
use rust_azure_provider::render::{CONTENT_TYPE_PEM, RenderOptions, render_secret};
use rust_azure_provider::secret::SecretString;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let value = String::from_utf8_lossy(text).into_owned();
    let opts = RenderOptions {
        construct_pem_chain: mode & 1 != 0,
        write_cert_and_key_in_separate_files: mode & 2 != 0,
    };
    let format = if mode & 4 != 0 { ObjectFormat::Pfx } else { ObjectFormat::Pem };
    let encoding = match (mode >> 3) & 3 {
        1 => ObjectEncoding::Base64,
        2 => ObjectEncoding::Hex,
        _ => ObjectEncoding::Utf8,
    };
    let cert_backed = mode & 0x20 == 0;
    let _ = render_secret(
        SecretString::new(value),
        Some(CONTENT_TYPE_PEM),
        cert_backed,
        format,
        encoding,
        &opts,
    );
});
