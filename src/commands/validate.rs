//! `validate`: offline checks of SecretProviderClass files with the same parser
//! and validation as Mount, for CI pipelines.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::config::ValidateArgs;
use crate::mount::params::{self, IdentityMode, ObjectType, ParsedParams};
use crate::mount::request::MountInput;
use crate::mount::{MountOptions, request};
use crate::spc::{self, PodInfo, SecretProviderClass};

/// Placeholder token used offline: the real one comes from kubelet at mount time.
const OFFLINE_TOKEN: &str = "offline-validation-placeholder";

/// Entry point of `validate`.
pub fn main(args: &ValidateArgs) -> ExitCode {
    let options = MountOptions {
        default_cloud: args.cloud_name.clone(),
        construct_pem_chain: true,
        write_cert_and_key_in_separate_files: false,
    };
    let mut invalid = false;
    let mut unreadable = false;
    for file in &args.files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                println!("{}: error: cannot read: {e}", file.display());
                unreadable = true;
                continue;
            }
        };
        let spcs = match spc::parse_documents(&text) {
            Ok(s) => s,
            Err(spc::SpcError::Empty) => {
                // Pipelines pass whole manifest directories: other kinds are not an error.
                println!("{}: no SecretProviderClass (skipped)", file.display());
                continue;
            }
            Err(e) => {
                println!("{}: error: {e}", file.display());
                invalid = true;
                continue;
            }
        };
        for spc in &spcs {
            let report = check(spc, &options);
            let name = &spc.metadata.name;
            for w in &report.warnings {
                println!("{}: {name}: warning: {w}", file.display());
            }
            for e in &report.errors {
                println!("{}: {name}: error: {e}", file.display());
            }
            let strict_failure = args.strict && !report.warnings.is_empty();
            if report.errors.is_empty() && !strict_failure {
                println!("{}: {name}: ok ({})", file.display(), report.summary);
            } else {
                invalid = true;
            }
        }
    }
    if unreadable {
        ExitCode::from(2)
    } else if invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Findings for one SecretProviderClass.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems that make a Mount fail.
    pub errors: Vec<String>,
    /// Problems that are ignored at mount time.
    pub warnings: Vec<String>,
    /// One line describing what the class mounts.
    pub summary: String,
}

/// Validates one SecretProviderClass offline.
pub fn check(spc: &SecretProviderClass, options: &MountOptions) -> Report {
    let mut report = Report::default();
    match spc.spec.provider.as_str() {
        "rust-azure" => {}
        "azure" => report.warnings.push(
            "spec.provider is \"azure\" (the Azure provider); change it to \"rust-azure\" to use rust-azure-provider".into(),
        ),
        other => report.errors.push(format!(
            "spec.provider is {other:?}; it must be \"rust-azure\""
        )),
    }
    if !spc.api_version.is_empty() && !spc::API_VERSIONS.contains(&spc.api_version.as_str()) {
        report.errors.push(format!(
            "apiVersion {:?} is not served by the driver; use {}",
            spc.api_version,
            spc::API_VERSIONS[0]
        ));
    }
    if spc.spec.parameters.is_empty() {
        report
            .errors
            .push("spec.parameters is empty (the driver refuses such a class)".into());
        return report;
    }
    // Offline there is no kubelet: supply pod fields, and placeholders for the
    // material that only exists at mount time, so every other rule is checked.
    let pod = PodInfo {
        name: "validate".into(),
        namespace: spc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        service_account: "default".into(),
    };
    let tokens = serde_json::json!({
        "api://AzureADTokenExchange": {"token": OFFLINE_TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"},
        "api://AKSIdentityBinding": {"token": OFFLINE_TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"},
    })
    .to_string();
    let mut attributes = spc::driver_attributes(spc, &pod, None);
    attributes.remove(request::TOKENS_KEY);
    let secrets: BTreeMap<&str, &str> = [
        ("clientid", "offline-client-id"),
        ("clientsecret", OFFLINE_TOKEN),
    ]
    .into();
    let input = match (
        serde_json::to_string(&attributes),
        serde_json::to_string(&secrets),
    ) {
        (Ok(a), Ok(s)) => MountInput::decode(&a, &s, "420", String::new(), vec![]),
        _ => {
            report.errors.push("cannot encode parameters".into());
            return report;
        }
    };
    let mut input = match input {
        Ok(i) => i,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    input.service_account_tokens = Some(tokens.into());
    match params::parse_params(&input, options) {
        Ok(parsed) => {
            report.summary = summary(&parsed);
            for w in &parsed.warnings {
                report.warnings.push(w.to_string());
            }
            check_secret_objects(spc, &parsed, &mut report);
        }
        Err(e) => report.errors.push(e.to_string()),
    }
    report
}

fn summary(parsed: &ParsedParams) -> String {
    let p = &parsed.params;
    let identity = match &p.identity {
        IdentityMode::ServicePrincipal { .. } => {
            "service principal (clientid/clientsecret from nodePublishSecretRef at mount time)"
        }
        IdentityMode::WorkloadIdentity { .. } => {
            "workload identity (needs CSIDriver tokenRequests audience api://AzureADTokenExchange)"
        }
        IdentityMode::VmManagedIdentity { .. } => "VM managed identity (IMDS)",
        IdentityMode::PodIdentity => "AAD pod identity (NMI; provider on the host network)",
        IdentityMode::AzureTokenProxy { .. } => {
            "identity binding (needs CSIDriver tokenRequests audience api://AKSIdentityBinding)"
        }
    };
    format!(
        "vault {}, {} object(s), identity: {identity}",
        p.keyvault_name,
        p.objects.len()
    )
}

/// The driver's secretObjects rules, plus a check that each file is produced.
fn check_secret_objects(spc: &SecretProviderClass, parsed: &ParsedParams, report: &mut Report) {
    let mut produced: Vec<String> = vec![];
    for o in &parsed.params.objects {
        let base = o.file_name().to_owned();
        if o.object_version_history > 1 {
            produced.extend((0..o.object_version_history).map(|i| format!("{base}/{i}")));
        } else {
            if o.object_type == ObjectType::Secret {
                produced.push(format!("{base}.crt"));
                produced.push(format!("{base}.key"));
            }
            produced.push(base);
        }
    }
    for (i, so) in spc.spec.secret_objects.iter().enumerate() {
        let at = format!("secretObjects[{i}]");
        if so.secret_name.is_empty() {
            report.errors.push(format!("{at}: secret name is empty"));
        }
        if so.secret_type.is_empty() {
            report.errors.push(format!(
                "{at}: secret type is empty (use Opaque or kubernetes.io/tls)"
            ));
        }
        if so.data.is_empty() {
            report.errors.push(format!("{at}: data is empty"));
        }
        for (j, d) in so.data.iter().enumerate() {
            if d.object_name.is_empty() {
                report.errors.push(format!(
                    "{at}.data[{j}]: object name in secretObjects.data is empty"
                ));
            } else if !produced.contains(&d.object_name) {
                report.errors.push(format!(
                    "{at}.data[{j}]: objectName {:?} matches no mounted file; use the objectAlias or objectName of an entry in objects (\"<name>/0\" for version history)",
                    d.object_name
                ));
            }
            if d.key.is_empty() {
                report.errors.push(format!(
                    "{at}.data[{j}]: key in secretObjects.data is empty"
                ));
            }
            if so.secret_type == "kubernetes.io/tls" && d.key != "tls.crt" && d.key != "tls.key" {
                report.errors.push(format!(
                    "{at}.data[{j}]: key '{}' is not supported. Only 'tls.key' and 'tls.crt' are supported",
                    d.key
                ));
            }
        }
    }
}
