//! Every rejected SecretProviderClass case of azure-behaviour.md, over a real
//! unix socket against the production server: the gRPC code, a message that
//! names the parameter or object, and a server that keeps serving. Nothing here
//! reaches Azure: validation happens before any network I/O.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod common;

use std::collections::BTreeMap;

use common::provider_server::{TestServer, channel};
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use rust_azure_provider::grpc::proto::v1alpha1::{MountRequest, VersionRequest};
use tonic::Code;

fn base() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("keyvaultName", "myk8skv".to_owned()),
        (
            "tenantID",
            "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned(),
        ),
        ("usePodIdentity", "true".to_owned()),
        (
            "objects",
            "array:\n  - |\n    objectName: a\n    objectType: secret\n".to_owned(),
        ),
        ("csi.storage.k8s.io/pod.name", "p".to_owned()),
        ("csi.storage.k8s.io/pod.namespace", "default".to_owned()),
        ("secretProviderClass", "spc".to_owned()),
    ])
}

fn objects(entries: &[&str]) -> String {
    let mut s = String::from("array:\n");
    for e in entries {
        s.push_str("  - |\n");
        for line in e.lines() {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

struct Case {
    name: &'static str,
    attributes: String,
    secrets: &'static str,
    permission: &'static str,
    code: Code,
    fragments: &'static [&'static str],
}

fn case(
    name: &'static str,
    edit: impl FnOnce(&mut BTreeMap<&'static str, String>),
    code: Code,
    fragments: &'static [&'static str],
) -> Case {
    let mut attrs = base();
    edit(&mut attrs);
    Case {
        name,
        attributes: serde_json::to_string(&attrs).unwrap(),
        secrets: "null",
        permission: "420",
        code,
        fragments,
    }
}

fn sp(edit_secrets: &'static str, fragments: &'static [&'static str]) -> Case {
    let mut c = case(
        "service principal",
        |a| {
            a.remove("usePodIdentity");
        },
        Code::FailedPrecondition,
        fragments,
    );
    c.secrets = edit_secrets;
    c
}

fn cases() -> Vec<Case> {
    use Code::{FailedPrecondition as Pre, InvalidArgument as Inv};
    let obj = |e: &'static [&'static str]| objects(e);
    vec![
        case(
            "no pod name",
            |a| {
                a.remove("csi.storage.k8s.io/pod.name");
            },
            Inv,
            &["pod name is not provided"],
        ),
        case(
            "no pod namespace",
            |a| {
                a.remove("csi.storage.k8s.io/pod.namespace");
            },
            Inv,
            &["pod namespace is not provided"],
        ),
        case(
            "bad usePodIdentity",
            |a| {
                a.insert("usePodIdentity", "yes".into());
            },
            Inv,
            &["usePodIdentity"],
        ),
        case(
            "bad useVMManagedIdentity",
            |a| {
                a.insert("useVMManagedIdentity", "maybe".into());
            },
            Inv,
            &["useVMManagedIdentity"],
        ),
        case(
            "bad useAzureTokenProxy",
            |a| {
                a.insert("useAzureTokenProxy", "on".into());
            },
            Inv,
            &["useAzureTokenProxy"],
        ),
        case(
            "two modes",
            |a| {
                a.insert("useVMManagedIdentity", "true".into());
            },
            Inv,
            &["only one identity mode can be enabled at a time"],
        ),
        case(
            "no keyvaultName",
            |a| {
                a.remove("keyvaultName");
            },
            Inv,
            &["keyvaultName is not provided"],
        ),
        case(
            "short vault name",
            |a| {
                a.insert("keyvaultName", "ab".into());
            },
            Inv,
            &["\"ab\"", "between 3 and 24"],
        ),
        case(
            "vault name charset",
            |a| {
                a.insert("keyvaultName", "my_vault".into());
            },
            Inv,
            &["my_vault", "[-a-zA-Z0-9]{3,24}"],
        ),
        case(
            "no tenant",
            |a| {
                a.remove("tenantID");
            },
            Inv,
            &["tenantId is not provided"],
        ),
        case(
            "unknown cloud",
            |a| {
                a.insert("cloudName", "AzurePublic".into());
            },
            Inv,
            &["cloudName AzurePublic is not valid", "\"AZUREPUBLIC\""],
        ),
        case(
            "case-variant parameter",
            |a| {
                a.insert("userAssignedIdentityId", "x".into());
            },
            Inv,
            &[
                "\"userAssignedIdentityId\"",
                "did you mean \"userAssignedIdentityID\"",
            ],
        ),
        case(
            "no objects",
            |a| {
                a.remove("objects");
            },
            Inv,
            &["objects is not set"],
        ),
        case(
            "objects not YAML",
            |a| {
                a.insert("objects", "array: [\n".into());
            },
            Inv,
            &["failed to yaml unmarshal objects"],
        ),
        case(
            "objects bare list",
            |a| {
                a.insert("objects", "- objectName: a\n".into());
            },
            Inv,
            &["failed to yaml unmarshal objects"],
        ),
        case(
            "objects empty",
            |a| {
                a.insert("objects", "array: []\n".into());
            },
            Inv,
            &["objects contains no entries"],
        ),
        case(
            "objectType case",
            |a| {
                a.insert("objects", obj(&["objectName: a\nobjectType: Secret"]));
            },
            Inv,
            &["objectName:a", "use \"secret\""],
        ),
        case(
            "objectType unknown",
            |a| {
                a.insert("objects", obj(&["objectName: a\nobjectType: blob"]));
            },
            Inv,
            &["Invalid vaultObjectTypes. Should be secret, key, or cert"],
        ),
        case(
            "objectFormat unknown",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nobjectFormat: der"]),
                );
            },
            Inv,
            &["invalid objectFormat: der, should be PEM or PFX"],
        ),
        case(
            "pfx on a key",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: k\nobjectType: key\nobjectFormat: PFX"]),
                );
            },
            Inv,
            &[
                "objectName:k",
                "PFX format only supported for objectType: secret",
            ],
        ),
        case(
            "encoding on a cert",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: c\nobjectType: cert\nobjectEncoding: base64"]),
                );
            },
            Inv,
            &["objectEncoding only supported for objectType: secret"],
        ),
        case(
            "encoding unknown",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nobjectEncoding: utf-16"]),
                );
            },
            Inv,
            &["invalid objectEncoding: utf-16, should be hex, base64 or utf-8"],
        ),
        case(
            "filePermission invalid",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nfilePermission: \"0900\""]),
                );
            },
            Inv,
            &["\"0900\" is not a valid octal file mode (0000–0777)"],
        ),
        case(
            "filePermission above 0777",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nfilePermission: \"1777\""]),
                );
            },
            Inv,
            &["\"1777\""],
        ),
        case(
            "alias traversal",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nobjectAlias: ../x"]),
                );
            },
            Inv,
            &["'..'"],
        ),
        case(
            "alias absolute",
            |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nobjectAlias: /etc/x"]),
                );
            },
            Inv,
            &["relative path"],
        ),
        case(
            "object field case",
            |a| {
                a.insert("objects", obj(&["objectname: a\nobjectType: secret"]));
            },
            Inv,
            &["\"objectname\"", "did you mean \"objectName\""],
        ),
        case(
            "duplicate paths",
            |a| {
                a.insert(
                    "objects",
                    obj(&[
                        "objectName: a\nobjectType: secret\nobjectAlias: same",
                        "objectName: b\nobjectType: secret\nobjectAlias: same",
                    ]),
                );
            },
            Inv,
            &["same", "secret/a", "secret/b"],
        ),
        case(
            "identity binding without clientID",
            |a| {
                a.remove("usePodIdentity");
                a.insert("useAzureTokenProxy", "true".into());
            },
            Inv,
            &["clientID is required for identity binding"],
        ),
        case(
            "workload identity without tokens",
            |a| {
                a.remove("usePodIdentity");
                a.insert("clientID", "c".into());
            },
            Pre,
            &["service account tokens not found", "tokenRequests"],
        ),
        case(
            "workload identity bad tokens",
            |a| {
                a.remove("usePodIdentity");
                a.insert("clientID", "c".into());
                a.insert(
                    "csi.storage.k8s.io/serviceAccount.tokens",
                    "{not json".into(),
                );
            },
            Pre,
            &["failed to unmarshal service account tokens"],
        ),
        case(
            "workload identity wrong audience",
            |a| {
                a.remove("usePodIdentity");
                a.insert("clientID", "c".into());
                a.insert(
                    "csi.storage.k8s.io/serviceAccount.tokens",
                    r#"{"other":{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#
                        .into(),
                );
            },
            Pre,
            &["token for audience api://AzureADTokenExchange not found"],
        ),
        // rust-azure extensions: jmesPath and per-object keyvaultName.
        case(
            "jmesPath invalid expression",
            move |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\njmesPath:\n  - path: \"x[?\"\n    objectAlias: x"]),
                );
            },
            Inv,
            &[
                "objectName:a",
                "jmesPath[0].path \"x[?\" is not a valid JMESPath expression",
            ],
        ),
        case(
            "jmesPath without objectAlias",
            move |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\njmesPath:\n  - path: user"]),
                );
            },
            Inv,
            &["jmesPath[0].objectAlias is not set"],
        ),
        case(
            "jmesPath objectAlias not a string",
            move |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\njmesPath:\n  - path: user\n    objectAlias: {x: y}"]),
                );
            },
            Inv,
            &["expected jmesPath objectAlias as a single string value"],
        ),
        case(
            "jmesPath on a key",
            move |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: k\nobjectType: key\njmesPath:\n  - path: n\n    objectAlias: n"]),
                );
            },
            Inv,
            &[
                "objectType:key",
                "jmesPath is only supported for objectType: secret",
            ],
        ),
        case(
            "jmesPath alias duplicates another object",
            move |a| {
                a.insert(
                    "objects",
                    obj(&[
                        "objectName: a\nobjectType: secret\njmesPath:\n  - path: n\n    objectAlias: b",
                        "objectName: b\nobjectType: secret",
                    ]),
                );
            },
            Inv,
            &["both write the file \"b\""],
        ),
        case(
            "object keyvaultName invalid",
            move |a| {
                a.insert(
                    "objects",
                    obj(&["objectName: a\nobjectType: secret\nkeyvaultName: https://kv2.vault.azure.net"]),
                );
            },
            Inv,
            &["keyvaultName \"https://kv2.vault.azure.net\" is not valid"],
        ),
        case(
            "no keyvaultName for every object",
            move |a| {
                a.remove("keyvaultName");
                a.insert(
                    "objects",
                    obj(&[
                        "objectName: a\nobjectType: secret\nkeyvaultName: kv2",
                        "objectName: b\nobjectType: secret",
                    ]),
                );
            },
            Inv,
            &[
                "keyvaultName is not provided",
                "spec.parameters.keyvaultName",
                "keyvaultName in every entry of spec.parameters.objects",
            ],
        ),
        sp("null", &["nodePublishSecretRef secret is not set"]),
        sp("{}", &["could not find clientid in secrets"]),
        sp(
            r#"{"clientid":"id"}"#,
            &["could not find clientsecret in secrets"],
        ),
        Case {
            name: "attributes not JSON",
            attributes: "{oops".into(),
            secrets: "null",
            permission: "420",
            code: Inv,
            fragments: &["failed to unmarshal attributes"],
        },
        Case {
            name: "attributes not strings",
            attributes: r#"{"keyvaultName": 3}"#.into(),
            secrets: "null",
            permission: "420",
            code: Inv,
            fragments: &["failed to unmarshal attributes"],
        },
        Case {
            name: "secrets not a map",
            attributes: "{}".into(),
            secrets: "[1]",
            permission: "420",
            code: Inv,
            fragments: &["failed to unmarshal secrets"],
        },
        Case {
            name: "permission not a number",
            attributes: "{}".into(),
            secrets: "null",
            permission: "\"0644\"",
            code: Inv,
            fragments: &["failed to unmarshal file permission"],
        },
    ]
}

#[tokio::test]
async fn every_rejected_case_has_its_code_and_message() {
    let server = TestServer::start();
    let mut client = CsiDriverProviderClient::new(channel(&server.path).await);
    let mut failures = vec![];
    for c in cases() {
        let result = client
            .mount(MountRequest {
                attributes: c.attributes.clone(),
                secrets: c.secrets.to_owned(),
                target_path: String::new(),
                permission: c.permission.to_owned(),
                current_object_version: vec![],
            })
            .await;
        match result {
            Ok(_) => failures.push(format!("{}: accepted", c.name)),
            Err(status) => {
                if status.code() != c.code {
                    failures.push(format!(
                        "{}: code {:?}, want {:?}: {}",
                        c.name,
                        status.code(),
                        c.code,
                        status.message()
                    ));
                }
                for f in c.fragments {
                    if !status.message().contains(f) {
                        failures.push(format!(
                            "{}: message lacks {f:?}: {}",
                            c.name,
                            status.message()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The server kept serving through every rejection.
    let v = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap();
    assert_eq!(v.into_inner().runtime_name, "rust-azure-provider");
    server.stop().await;
}
