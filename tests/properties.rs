//! Property tests over the public parsers: request decoding, parameter parsing (including the
//! `objects` YAML) and the HTTP/2 authority adapter never panic, whatever the input.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use rust_azure_provider::grpc::AuthorityTolerant;
use rust_azure_provider::mount::params::parse_params;
use rust_azure_provider::mount::{MountInput, MountOptions};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

fn options() -> MountOptions {
    MountOptions {
        default_cloud: "AzurePublicCloud".to_owned(),
        construct_pem_chain: true,
        write_cert_and_key_in_separate_files: false,
    }
}

/// YAML-ish text built from the tokens the `objects` parser cares about.
fn objects_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "array:",
        "\n",
        "  - |",
        "    ",
        "objectName: ",
        "objectType: ",
        "secret",
        "key",
        "cert",
        "objectAlias: ",
        "../x",
        "/abs",
        "a/b",
        "objectVersion: ",
        "objectVersionHistory: ",
        "2147483647",
        "-1",
        "objectFormat: ",
        "pfx",
        "objectEncoding: ",
        "base64",
        "hex",
        "filePermission: ",
        "0777",
        "0x1ff",
        "\"",
        "'",
        "{",
        "}",
        "[",
        "]",
        ":",
        "- ",
        "&a",
        "*a",
        "!!binary",
        "~",
        "null",
        "\t",
        "é",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn decode_never_panics(attributes in "\\PC{0,120}", secrets in "\\PC{0,60}", permission in "\\PC{0,8}") {
        if let Ok(input) = MountInput::decode(&attributes, &secrets, &permission, String::new(), vec![]) {
            prop_assert!(input.default_mode <= 0o777);
        }
    }

    #[test]
    fn parse_params_never_panics(objects in objects_text(), wi in any::<bool>()) {
        let mut map = BTreeMap::new();
        map.insert("csi.storage.k8s.io/pod.name".to_owned(), "app".to_owned());
        map.insert("csi.storage.k8s.io/pod.namespace".to_owned(), "default".to_owned());
        map.insert("keyvaultName".to_owned(), "kv-props".to_owned());
        map.insert("tenantId".to_owned(), "t".to_owned());
        if wi {
            map.insert("clientID".to_owned(), "c".to_owned());
            map.insert(
                "csi.storage.k8s.io/serviceAccount.tokens".to_owned(),
                r#"{"api://AzureADTokenExchange":{"token":"t"}}"#.to_owned(),
            );
        }
        map.insert("objects".to_owned(), objects);
        let attributes = serde_json::to_string(&map).unwrap();
        let input = MountInput::decode(&attributes, r#"{"clientid":"a","clientsecret":"b"}"#, "420", String::new(), vec![]).unwrap();
        if let Ok(parsed) = parse_params(&input, &options()) {
            for spec in &parsed.params.objects {
                // Whatever was accepted names a usable file.
                prop_assert!(!spec.file_name().is_empty());
                prop_assert!(!spec.file_name().starts_with('/'));
                prop_assert!(!spec.file_name().split('/').any(|e| e == ".."));
            }
        }
    }

    #[test]
    fn authority_adapter_never_panics(prefix in any::<bool>(), body in prop::collection::vec(any::<u8>(), 0..400), chunk in 1usize..40) {
        let mut data = Vec::new();
        if prefix {
            data.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        }
        data.extend_from_slice(&body);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut adapter = AuthorityTolerant::new(Chunked { data: &data, chunk });
            let mut out = Vec::new();
            let _ = adapter.read_to_end(&mut out).await;
        });
    }
}

/// Yields its data at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}
