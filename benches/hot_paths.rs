//! criterion benchmarks of the per-Mount CPU hot paths: request decoding, parameter parsing,
//! rendering (PKCS#12 -> PEM, JWK -> PEM) and the HTTP/2 `:authority` rewriting adapter.
//!
//! `cargo bench --bench hot_paths` (inputs come from `../shared/testdata/keyvault-responses/`).

#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "benchmark setup fails loudly"
)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rust_azure_provider::grpc::AuthorityTolerant;
use rust_azure_provider::mount::MountOptions;
use rust_azure_provider::mount::params::{ObjectEncoding, ObjectFormat, parse_params};
use rust_azure_provider::mount::request::MountInput;
use rust_azure_provider::render::{self, Jwk, RenderOptions};
use rust_azure_provider::secret::SecretString;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

fn testdata(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/keyvault-responses")
        .join(name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("testdata {} is missing: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("testdata is JSON")
}

/// Attributes as the driver sends them for an SPC with `n` secrets (workload identity).
fn attributes(n: usize) -> String {
    let mut objects = String::from("array:\n");
    for i in 0..n {
        objects.push_str(&format!(
            "  - |\n    objectName: secret-{i}\n    objectType: secret\n    objectAlias: file-{i}\n"
        ));
    }
    json!({
        "csi.storage.k8s.io/pod.name": "app-7d9c8b6f5-x2x7q",
        "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/pod.uid": "0b6d6f4c-1111-2222-3333-444455556666",
        "csi.storage.k8s.io/serviceAccount.name": "app",
        "csi.storage.k8s.io/ephemeral": "false",
        "secretProviderClass": "app-secrets",
        "keyvaultName": "contoso-kv",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "clientID": "00000000-0000-0000-0000-00000000c11e",
        "csi.storage.k8s.io/serviceAccount.tokens": json!({"api://AzureADTokenExchange": {"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "expirationTimestamp": "2099-01-01T00:00:00Z"}}).to_string(),
        "objects": objects,
    })
    .to_string()
}

fn decode(attrs: &str) -> MountInput {
    MountInput::decode(
        attrs,
        "null",
        "420",
        "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".into(),
        vec![],
    )
    .expect("decodes")
}

fn options() -> MountOptions {
    MountOptions {
        default_cloud: "AzurePublicCloud".into(),
        construct_pem_chain: true,
        write_cert_and_key_in_separate_files: false,
    }
}

fn request(c: &mut Criterion) {
    for n in [1, 50] {
        let attrs = attributes(n);
        c.bench_function(&format!("MountInput::decode/{n}_objects"), |b| {
            b.iter(|| decode(black_box(&attrs)))
        });
        let input = decode(&attrs);
        let opts = options();
        c.bench_function(&format!("parse_params/{n}_objects"), |b| {
            b.iter(|| parse_params(black_box(&input), &opts).expect("valid"))
        });
    }
}

fn rendering(c: &mut Criterion) {
    let opts = RenderOptions::default();
    for (label, file) in [
        ("pkcs12_rsa", "secret-cert-backed-pkcs12-rsa.json"),
        ("pkcs12_ec_p384", "secret-cert-backed-pkcs12-ec-p384.json"),
        ("pem_rsa", "secret-cert-backed-pem-rsa.json"),
    ] {
        let body = testdata(file);
        let value = body["value"].as_str().expect("value").to_owned();
        let content_type = body["contentType"]
            .as_str()
            .expect("contentType")
            .to_owned();
        c.bench_function(&format!("render_secret/{label}_to_pem"), |b| {
            b.iter_batched(
                || SecretString::new(value.clone()),
                |v| {
                    render::render_secret(
                        v,
                        Some(&content_type),
                        true,
                        ObjectFormat::Pem,
                        ObjectEncoding::Utf8,
                        &opts,
                    )
                    .expect("renders")
                },
                BatchSize::SmallInput,
            )
        });
    }
    let plain = testdata("secret-plain.json");
    let value = plain["value"].as_str().expect("value").to_owned();
    c.bench_function("render_secret/plain", |b| {
        b.iter_batched(
            || SecretString::new(value.clone()),
            |v| {
                render::render_secret(
                    v,
                    None,
                    false,
                    ObjectFormat::Pem,
                    ObjectEncoding::Utf8,
                    &opts,
                )
                .expect("renders")
            },
            BatchSize::SmallInput,
        )
    });
    for (label, file) in [("rsa", "key-rsa.json"), ("ec_p256", "key-ec-p256.json")] {
        let body = testdata(file);
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
        c.bench_function(&format!("render_key/{label}_jwk_to_pem"), |b| {
            b.iter(|| render::render_key(black_box(&jwk)).expect("renders"))
        });
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Client bytes of one connection: preface, SETTINGS, then `calls` Mount calls with the given
/// `:authority` (HEADERS + a 2 KiB DATA frame each).
fn connection_bytes(authority: &[u8], calls: u32) -> Vec<u8> {
    let mut enc = loona_hpack::Encoder::new();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    for i in 0..calls {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/v1alpha1.CSIDriverProvider/Mount"),
            (b":authority", authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", b"grpc-go/1.72.0"),
        ];
        let block = enc.encode(headers);
        let stream = 2 * i + 1;
        out.extend(frame(0x1, 0x4, stream, &block));
        out.extend(frame(0x0, 0x1, stream, &[0u8; 2048]));
    }
    out
}

fn authority(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (label, auth) in [
        ("localhost", &b"localhost"[..]),
        (
            "socket_path_rewritten",
            &b"/var/run/secrets-store-csi-providers/rust-azure.sock"[..],
        ),
    ] {
        let input = connection_bytes(auth, 100);
        c.bench_function(&format!("authority_adapter/100_calls_{label}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut a = AuthorityTolerant::new(black_box(&input[..]));
                    let mut out = Vec::with_capacity(input.len() + 1024);
                    a.read_to_end(&mut out).await.expect("adapter reads");
                    out
                })
            })
        });
    }
}

criterion_group!(benches, request, rendering, authority);
criterion_main!(benches);
