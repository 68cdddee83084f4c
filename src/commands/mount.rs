//! `mount`: performs the driver's Mount call against a running provider and
//! writes the files into a directory, printing object versions; with `--credential` the
//! Mount runs in this process with a workstation credential (`mount/local.rs`).

use std::collections::BTreeMap;
use std::process::ExitCode;

mod local;

use crate::config::MountArgs;
use crate::grpc::proto::v1alpha1::MountRequest;
use crate::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use crate::spc::{self, PodInfo, SecretProviderClass};
use crate::writer::{PayloadFile, write_atomically};

/// Entry point of `mount`.
pub fn main(args: &MountArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(Failure::Local(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Connect(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

/// Why `mount` stopped before the provider answered (see `MOUNT_EXIT_CODES`).
enum Failure {
    /// Exit code 2.
    Local(String),
    /// Exit code 3.
    Connect(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Local(message)
    }
}

fn select_spc(args: &MountArgs) -> Result<SecretProviderClass, String> {
    // `-`: standard input, so that `kubectl get secretproviderclass … -o yaml` can be piped
    // into a node debug container whose image has no shell.
    let text = if args.spc.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        text
    } else {
        std::fs::read_to_string(&args.spc)
            .map_err(|e| format!("cannot read {}: {e}", args.spc.display()))?
    };
    let mut spcs =
        spc::parse_documents(&text).map_err(|e| format!("{}: {e}", args.spc.display()))?;
    match &args.spc_name {
        Some(name) => spcs
            .into_iter()
            .find(|s| &s.metadata.name == name)
            .ok_or_else(|| {
                format!(
                    "{}: no SecretProviderClass named {name:?}",
                    args.spc.display()
                )
            }),
        None if spcs.len() == 1 => Ok(spcs.remove(0)),
        None => Err(format!(
            "{} holds {} SecretProviderClasses; choose one with --spc-name",
            args.spc.display(),
            spcs.len()
        )),
    }
}

/// The tokens attribute kubelet would pass: one entry per audience.
fn tokens_json(args: &MountArgs) -> Result<Option<String>, String> {
    let Some(path) = &args.service_account_token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let expires = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    )
    .to_string();
    let map: BTreeMap<&str, serde_json::Value> = args
        .token_audience
        .iter()
        .map(|aud| {
            (
                aud.as_str(),
                serde_json::json!({"token": token.trim(), "expirationTimestamp": expires}),
            )
        })
        .collect();
    serde_json::to_string(&map)
        .map(Some)
        .map_err(|e| format!("cannot encode tokens: {e}"))
}

fn secrets_json(args: &MountArgs) -> Result<String, String> {
    let Some(path) = &args.node_publish_secret_file else {
        // The driver sends the literal null without nodePublishSecretRef.
        return Ok("null".into());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let map: BTreeMap<String, String> = serde_norway::from_str(&text).map_err(|_| {
        format!(
            "{}: expected a map of string keys to string values",
            path.display()
        )
    })?;
    serde_json::to_string(&map).map_err(|e| format!("cannot encode secrets: {e}"))
}

async fn run(args: &MountArgs) -> Result<ExitCode, Failure> {
    if let Some(credential) = args.credential {
        return local::run(args, credential).await;
    }
    let spc = select_spc(args)?;
    let pod = PodInfo {
        name: args.pod_name.clone(),
        namespace: args.pod_namespace.clone(),
        uid: args.pod_uid.clone(),
        service_account: args.service_account.clone(),
    };
    let tokens = tokens_json(args)?;
    let attributes = spc::driver_attributes(&spc, &pod, tokens.as_deref());
    let request = MountRequest {
        attributes: serde_json::to_string(&attributes)
            .map_err(|e| format!("cannot encode attributes: {e}"))?,
        secrets: secrets_json(args)?,
        target_path: args.out.display().to_string(),
        permission: args.permission.to_string(),
        current_object_version: vec![],
    };
    let channel = crate::grpc::client::connect(args.socket.clone())
        .await
        .map_err(|e| {
            Failure::Connect(format!(
                "cannot connect to {}: {} (is the provider running on this node? is --socket the provider's socket?)",
                args.socket.display(),
                crate::error::chain_text(&e)
            ))
        })?;
    let mut client = CsiDriverProviderClient::new(channel);
    let call = client.mount(request);
    let response = match tokio::time::timeout(args.timeout, call).await {
        Err(_) => {
            eprintln!("error: Mount did not answer within {:?}", args.timeout);
            return Ok(ExitCode::from(1));
        }
        Ok(Err(status)) => {
            eprintln!(
                "Mount failed: code = {:?} desc = {}",
                status.code(),
                status.message()
            );
            return Ok(ExitCode::from(1));
        }
        Ok(Ok(r)) => r.into_inner(),
    };
    if let Some(err) = response.error.as_ref().filter(|e| !e.code.is_empty()) {
        eprintln!("Mount failed with provider error code {}", err.code);
        return Ok(ExitCode::from(1));
    }
    if response.object_version.is_empty() {
        eprintln!("Mount failed: missing object versions");
        return Ok(ExitCode::from(1));
    }
    let mut files = Vec::with_capacity(response.files.len());
    for f in &response.files {
        let mode = u32::try_from(f.mode)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("provider returned invalid mode {} for {}", f.mode, f.path))?;
        files.push(PayloadFile {
            path: &f.path,
            mode,
            contents: &f.contents,
        });
    }
    write_and_report(
        &args.out,
        &files,
        response
            .object_version
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str())),
    )
}

/// Writes `files` atomically into `out` as the driver does, then prints each file and each
/// object version (the same output for the socket and the in-process Mount).
fn write_and_report<'a>(
    out: &std::path::Path,
    files: &[PayloadFile<'_>],
    versions: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<ExitCode, Failure> {
    write_atomically(out, files)
        .map_err(|e| format!("cannot write files into {}: {e}", out.display()))?;
    for f in files {
        println!(
            "file {} mode {:04o} {} bytes",
            f.path,
            f.mode,
            f.contents.len()
        );
    }
    for (id, version) in versions {
        println!("version {id} {version}");
    }
    Ok(ExitCode::SUCCESS)
}
