//! Property tests over the public parsers: request decoding, parameter parsing (including the
//! `objects` YAML) and the HTTP/2 authority adapter never panic, whatever the input; and, over
//! well-formed requests and `objects` documents (and single known-bad mutations of them), the
//! parsers accept exactly the well-formed ones and return what was written. Those properties
//! print their acceptance rate and fail when it drops below a floor, so a generator that stops
//! reaching the assertions is noticed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_azure_provider::grpc::AuthorityTolerant;
use rust_azure_provider::mount::params::ObjectType;
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

/// Runs 256 cases of `strategy` through `check` (which returns whether the input was accepted,
/// after checking the outputs), prints the acceptance rate and fails below `floor`.
fn run_counting<S: Strategy>(
    name: &str,
    strategy: S,
    floor: f64,
    check: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) {
    let accepted = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |v| {
            total.fetch_add(1, Ordering::Relaxed);
            if check(v)? {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let (a, t) = (accepted.into_inner(), total.into_inner());
    eprintln!("PROPERTY {name}: accepted {a} of {t} generated inputs");
    assert!(
        t > 0 && a as f64 / t as f64 >= floor,
        "{name}: only {a} of {t} inputs reached the output assertions"
    );
}

/// A byte-level corruption of a JSON text: cut it short or overwrite one byte with a structural
/// character.
#[derive(Clone, Debug)]
enum Corruption {
    Truncate(usize),
    Overwrite(usize, char),
}

fn corrupt(text: &str, c: &Corruption) -> String {
    let mut bytes = text.as_bytes().to_vec();
    match *c {
        Corruption::Truncate(at) => bytes.truncate(at % bytes.len().max(1)),
        Corruption::Overwrite(at, ch) => {
            let at = at % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(at) {
                *b = ch as u8;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn corruption() -> impl Strategy<Value = Option<Corruption>> {
    prop_oneof![
        6 => Just(None),
        1 => (0usize..400).prop_map(|at| Some(Corruption::Truncate(at))),
        1 => (0usize..400, prop::sample::select(vec!['{', '}', '"', ',', ':', '[']))
            .prop_map(|(at, ch)| Some(Corruption::Overwrite(at, ch))),
    ]
}

const TOKENS_KEY: &str = "csi.storage.k8s.io/serviceAccount.tokens";

fn attribute_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop::sample::select(vec![
        "csi.storage.k8s.io/pod.name",
        "csi.storage.k8s.io/pod.namespace",
        "csi.storage.k8s.io/pod.uid",
        "keyvaultName",
        "tenantID",
        "objects",
        "usePodIdentity",
        TOKENS_KEY,
        "x-unknown",
        "clé",
    ]);
    prop::collection::btree_map(key.prop_map(str::to_owned), "\\PC{0,24}", 0..8)
}

fn secrets_text() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    let key = prop::sample::select(vec!["clientid", "clientsecret", "ClientID", "other"]);
    prop::option::of(prop::collection::btree_map(
        key.prop_map(str::to_owned),
        "\\PC{0,24}",
        0..4,
    ))
}

#[test]
fn decode_returns_what_was_sent() {
    let strategy = (
        attribute_map(),
        corruption(),
        secrets_text(),
        corruption(),
        prop_oneof![4 => 0u32..=0o777, 1 => 0o1000u32..5000],
    );
    run_counting(
        "decode",
        strategy,
        0.3,
        |(attrs, attrs_bad, secrets, secrets_bad, permission)| {
            let attrs_text = serde_json::to_string(&attrs).unwrap();
            let secrets_text = secrets
                .as_ref()
                .map_or_else(|| "null".to_owned(), |m| serde_json::to_string(m).unwrap());
            let sent_attrs = attrs_bad
                .as_ref()
                .map_or_else(|| attrs_text.clone(), |c| corrupt(&attrs_text, c));
            let sent_secrets = secrets_bad
                .as_ref()
                .map_or_else(|| secrets_text.clone(), |c| corrupt(&secrets_text, c));
            let decoded = MountInput::decode(
                &sent_attrs,
                &sent_secrets,
                &permission.to_string(),
                String::new(),
                vec![],
            );
            let intact = sent_attrs == attrs_text && sent_secrets == secrets_text;
            let input = match decoded {
                Ok(input) => input,
                Err(e) => {
                    // Only a corrupted document or a mode above 0777 may be refused.
                    prop_assert!(!intact || permission > 0o777, "{e}");
                    return Ok(false);
                }
            };
            prop_assert!(permission <= 0o777);
            prop_assert_eq!(input.default_mode, permission);
            if intact {
                for (k, v) in &attrs {
                    if k == TOKENS_KEY {
                        prop_assert_eq!(
                            input.service_account_tokens.as_ref().map(|t| t.expose()),
                            Some(v.as_str())
                        );
                        prop_assert_eq!(input.attributes.get(k), None);
                    } else {
                        prop_assert_eq!(input.attributes.get(k), Some(v.as_str()));
                    }
                }
                let expected_len = attrs.len() - usize::from(attrs.contains_key(TOKENS_KEY));
                prop_assert_eq!(input.attributes.len(), expected_len);
                match (&secrets, &input.secrets) {
                    (None, None) => {}
                    (Some(sent), Some(got)) => {
                        prop_assert_eq!(sent.len(), got.len());
                        for (k, v) in sent {
                            prop_assert_eq!(got.get(k).map(|s| s.expose()), Some(v.as_str()));
                        }
                    }
                    (sent, got) => prop_assert!(false, "secrets {sent:?} decoded as {got:?}"),
                }
            }
            Ok(true)
        },
    );
}

/// One well-formed `objects` entry as a SecretProviderClass author writes it.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    object_type: &'static str,
    alias: Option<String>,
    version: Option<String>,
    history: Option<u32>,
    permission: Option<u32>,
    format: Option<&'static str>,
    encoding: Option<&'static str>,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        "[a-z][a-z0-9-]{0,12}",
        prop::sample::select(vec!["secret", "key", "cert"]),
        prop::option::of("[a-z][a-z0-9_.]{0,8}(/[a-z][a-z0-9]{0,6})?"),
        prop::option::of("[0-9a-f]{32}"),
        prop::option::of(0u32..6),
        prop::option::of(0u32..=0o777),
        prop::option::of(prop::sample::select(vec!["pem", "pfx"])),
        prop::option::of(prop::sample::select(vec!["utf-8", "base64", "hex"])),
    )
        .prop_map(
            |(name, object_type, alias, version, history, permission, format, encoding)| {
                let secret = object_type == "secret";
                Entry {
                    name,
                    object_type,
                    alias: alias.filter(|a| !a.contains("..")),
                    version,
                    history,
                    permission,
                    format: format.filter(|f| secret || *f == "pem"),
                    encoding: encoding.filter(|_| secret),
                }
            },
        )
}

impl Entry {
    fn yaml(&self) -> String {
        let mut lines = vec![
            format!("objectName: {}", self.name),
            format!("objectType: {}", self.object_type),
        ];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                lines.push(format!("{k}: {v}"));
            }
        };
        opt("objectAlias", self.alias.clone());
        opt("objectVersion", self.version.clone());
        opt("objectVersionHistory", self.history.map(|h| h.to_string()));
        opt(
            "filePermission",
            self.permission.map(|m| format!("{m:04o}")),
        );
        opt("objectFormat", self.format.map(str::to_owned));
        opt("objectEncoding", self.encoding.map(str::to_owned));
        let mut out = String::from("  - |\n");
        for l in lines {
            out.push_str("    ");
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

/// One change that makes a well-formed entry invalid (the reference rejects each too).
fn breakage() -> impl Strategy<Value = Option<(usize, &'static str)>> {
    prop_oneof![
        3 => Just(None),
        1 => (0usize..8, prop::sample::select(vec![
            "objectType: secrets",
            "filePermission: 0999",
            "objectAlias: ../escape",
            "objectVersionHistory: -1",
            "objectEncoding: rot13",
            "objectFormat: der",
            "objectAlias: /abs",
        ])).prop_map(Some),
    ]
}

#[test]
fn parse_params_returns_the_objects_written() {
    let strategy = (prop::collection::vec(entry(), 1..5), breakage());
    run_counting("parse_params", strategy, 0.4, |(entries, broken)| {
        // Distinct names and aliases: the path checks at Mount time are not the subject here.
        let entries: Vec<Entry> = entries
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                e.name = format!("{}-{i}", e.name);
                e.alias = e.alias.map(|a| format!("{a}-{i}"));
                e
            })
            .collect();
        let mut yaml: Vec<String> = entries.iter().map(Entry::yaml).collect();
        if let Some((at, line)) = broken {
            let at = at % yaml.len();
            let key = line.split(':').next().unwrap();
            // Replace the field if present, else add it.
            let kept: Vec<&str> = yaml[at]
                .lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{key}:")))
                .collect();
            yaml[at] = format!("{}\n    {line}\n", kept.join("\n"));
        }
        let objects = format!("array:\n{}", yaml.concat());
        let mut map = BTreeMap::new();
        map.insert("csi.storage.k8s.io/pod.name".to_owned(), "app".to_owned());
        map.insert(
            "csi.storage.k8s.io/pod.namespace".to_owned(),
            "default".to_owned(),
        );
        map.insert("keyvaultName".to_owned(), "kv-props".to_owned());
        map.insert("tenantID".to_owned(), "t".to_owned());
        map.insert("objects".to_owned(), objects.clone());
        let attributes = serde_json::to_string(&map).unwrap();
        let input = MountInput::decode(
            &attributes,
            r#"{"clientid":"a","clientsecret":"b"}"#,
            "420",
            String::new(),
            vec![],
        )
        .unwrap();
        let parsed = match parse_params(&input, &options()) {
            Ok(p) => p,
            Err(e) => {
                prop_assert!(
                    broken.is_some(),
                    "well-formed objects rejected: {e}\n{objects}"
                );
                return Ok(false);
            }
        };
        prop_assert!(broken.is_none(), "accepted a broken entry:\n{objects}");
        let got = &parsed.params.objects;
        prop_assert_eq!(got.len(), entries.len());
        for (i, (spec, e)) in got.iter().zip(&entries).enumerate() {
            prop_assert_eq!(spec.index, i);
            prop_assert_eq!(&spec.object_name, &e.name);
            let object_type = match e.object_type {
                "secret" => ObjectType::Secret,
                "key" => ObjectType::Key,
                _ => ObjectType::Cert,
            };
            prop_assert_eq!(spec.object_type, object_type);
            prop_assert_eq!(&spec.object_alias, &e.alias);
            prop_assert_eq!(spec.file_name(), e.alias.as_deref().unwrap_or(&e.name));
            prop_assert_eq!(&spec.object_version, &e.version);
            prop_assert_eq!(spec.object_version_history, e.history.unwrap_or(0));
            prop_assert_eq!(spec.file_permission, e.permission);
        }
        Ok(true)
    });
}
