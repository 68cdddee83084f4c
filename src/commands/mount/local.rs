//! `mount --credential`: the whole Mount in this process, for SecretProviderClass authors at a
//! workstation. Same parsing, cloud resolution, Key Vault client, rendering and path rules as
//! the provider ([`Provider::mount`]); only the token source differs: azure_identity's
//! developer credential instead of the class's identity mode.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use super::{Failure, select_spc, write_and_report};
use crate::auth::developer::{DeveloperCredential, DeveloperTool};
use crate::auth::{TokenProvider, TokenProviderOptions};
use crate::config::{MountArgs, MountCredential};
use crate::http::{HttpClient, HttpConfig};
use crate::keyvault::{KeyVaultClient, RetryPolicy};
use crate::metrics::Metrics;
use crate::mount::params::{
    CLIENT_ID, USE_AZURE_TOKEN_PROXY, USE_POD_IDENTITY, USE_VM_MANAGED_IDENTITY,
    USER_ASSIGNED_IDENTITY_ID,
};
use crate::mount::{MountInput, MountOptions, Provider, ProviderParts};
use crate::spc::{self, PodInfo};
use crate::writer::PayloadFile;

/// Parameters that choose or configure an identity mode; the developer credential replaces them.
const IDENTITY_PARAMETERS: [&str; 5] = [
    USE_POD_IDENTITY,
    USE_VM_MANAGED_IDENTITY,
    USE_AZURE_TOKEN_PROXY,
    USER_ASSIGNED_IDENTITY_ID,
    CLIENT_ID,
];

fn flag_name(credential: MountCredential) -> &'static str {
    match credential {
        MountCredential::AzureCli => "azure-cli",
        MountCredential::DeveloperTools => "developer-tools",
    }
}

/// Removes the identity-mode parameters (reporting the ones that are set) and selects a mode
/// that needs no material, so the parser validates everything else exactly as in the provider.
fn replace_identity(
    attributes: &mut BTreeMap<String, String>,
    credential: MountCredential,
) -> Vec<String> {
    let mut ignored = Vec::new();
    attributes.retain(|key, value| {
        // Exact names only: a case variant stays and is rejected as the provider rejects it.
        let identity = IDENTITY_PARAMETERS.contains(&key.as_str());
        if identity && !value.trim().is_empty() {
            ignored.push(format!(
                "warning: spec.parameters.{key} is ignored with --credential {}: the token is the signed-in developer's",
                flag_name(credential)
            ));
        }
        !identity
    });
    // The developer credential answers every token request of this process, whatever the mode.
    attributes.insert(USE_VM_MANAGED_IDENTITY.to_owned(), "true".to_owned());
    ignored
}

/// Runs the Mount in-process.
pub(super) async fn run(
    args: &MountArgs,
    credential: MountCredential,
) -> Result<ExitCode, Failure> {
    let spc = select_spc(args)?;
    let pod = PodInfo {
        name: args.pod_name.clone(),
        namespace: args.pod_namespace.clone(),
        uid: args.pod_uid.clone(),
        service_account: args.service_account.clone(),
    };
    let mut attributes = spc::driver_attributes(&spc, &pod, None);
    let mut ignored = replace_identity(&mut attributes, credential);
    for (flag, given) in [
        (
            "--node-publish-secret-file",
            args.node_publish_secret_file.is_some(),
        ),
        (
            "--service-account-token-file",
            args.service_account_token_file.is_some(),
        ),
    ] {
        if given {
            ignored.push(format!(
                "warning: {flag} is ignored with --credential {}",
                flag_name(credential)
            ));
        }
    }
    for line in &ignored {
        eprintln!("{line}");
    }

    let http = HttpClient::new(&HttpConfig {
        ca_bundle: args.ca_bundle.clone(),
        ..HttpConfig::default()
    })
    .map_err(|e| crate::error::chain_text(&e))?;
    let tool = match credential {
        MountCredential::AzureCli => DeveloperTool::AzureCli,
        MountCredential::DeveloperTools => DeveloperTool::DeveloperTools,
    };
    let tokens = TokenProvider::new(
        Arc::new(http.clone()),
        TokenProviderOptions {
            developer: Some(DeveloperCredential::new(tool)),
            ..TokenProviderOptions::default()
        },
    );
    let provider = Provider::new(ProviderParts {
        options: MountOptions {
            default_cloud: args.cloud_name.clone(),
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
        },
        mount_timeout: args.timeout,
        tokens,
        keyvault: KeyVaultClient::new(http, RetryPolicy::default()),
        metrics: Metrics::new(),
        process_cloud_file: crate::cloud::process_env_cloud_file(),
    });

    let encoded =
        serde_json::to_string(&attributes).map_err(|e| format!("cannot encode attributes: {e}"))?;
    let result = match MountInput::decode(
        &encoded,
        "null",
        &args.permission.to_string(),
        args.out.display().to_string(),
        vec![],
    ) {
        Ok(input) => provider.mount(input).await,
        Err(e) => Err(e.into()),
    };
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            let status = tonic::Status::from(&e);
            eprintln!(
                "Mount failed: code = {:?} desc = {}",
                status.code(),
                status.message()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let files: Vec<PayloadFile<'_>> = output
        .files
        .iter()
        .map(|f| PayloadFile {
            path: &f.path,
            mode: f.mode,
            contents: f.contents.expose(),
        })
        .collect();
    write_and_report(
        &args.out,
        &files,
        output
            .object_versions
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str())),
    )
}
