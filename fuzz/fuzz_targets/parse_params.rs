//! `parse_params` over arbitrary attributes: either a JSON attribute map, or the
//! `objects` YAML with otherwise valid parameters.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rust_azure_provider::mount::MountInput;
use rust_azure_provider::mount::params::parse_params;
use rust_azure_provider::mount::MountOptions;

fn options() -> MountOptions {
    MountOptions {
        default_cloud: "AzurePublicCloud".to_owned(),
        construct_pem_chain: true,
        write_cert_and_key_in_separate_files: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let attributes = if mode & 1 == 0 {
        // The whole attribute map (including identity and token attributes).
        text.into_owned()
    } else {
        let mut map = BTreeMap::new();
        map.insert("csi.storage.k8s.io/pod.name", "app");
        map.insert("csi.storage.k8s.io/pod.namespace", "default");
        map.insert("csi.storage.k8s.io/pod.uid", "0b6d6f4c-1111-2222-3333-444455556666");
        map.insert("csi.storage.k8s.io/serviceAccount.name", "default");
        map.insert("keyvaultName", "kv");
        map.insert("tenantId", "72f988bf-86f1-41af-91ab-2d7cd011db47");
        if mode & 2 != 0 {
            map.insert("clientID", "c");
            map.insert(
                "csi.storage.k8s.io/serviceAccount.tokens",
                r#"{"api://AzureADTokenExchange":{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
            );
        } else {
            map.insert("usePodIdentity", "true");
        }
        map.insert("objects", &text);
        match serde_json::to_string(&map) {
            Ok(s) => s,
            Err(_) => return,
        }
    };
    let secrets = if mode & 4 != 0 {
        r#"{"clientid":"a","clientsecret":"b"}"#
    } else {
        "null"
    };
    let Ok(input) = MountInput::decode(&attributes, secrets, "420", String::new(), Vec::new())
    else {
        return;
    };
    if let Ok(parsed) = parse_params(&input, &options()) {
        for spec in &parsed.params.objects {
            let _ = spec.file_name();
        }
        let _ = format!("{:?}", parsed.params);
        for w in &parsed.warnings {
            let _ = w.hint();
        }
    }
});
