//! `ProviderService`: implements `CSIDriverProvider`; protocol <-> domain conversion only.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use zeroize::Zeroize;

use super::proto::v1alpha1 as pb;
use super::proto::v1alpha1::csi_driver_provider_server::CsiDriverProvider;
use super::status::code_name;
use crate::metrics::Metrics;
use crate::mount::{MountError, MountInput, MountOutput, ObjectVersion, Provider};

const VERSION_METHOD: &str = "/v1alpha1.CSIDriverProvider/Version";
const MOUNT_METHOD: &str = "/v1alpha1.CSIDriverProvider/Mount";

/// API version answered by `Version`.
pub const API_VERSION: &str = "v1alpha1";
/// Runtime name answered by `Version`.
pub const RUNTIME_NAME: &str = "rust-azure-provider";

/// The gRPC adapter over [`Provider`].
#[derive(Debug, Clone)]
pub struct ProviderService {
    provider: Arc<Provider>,
    metrics: Arc<Metrics>,
    max_response_bytes: usize,
}

impl ProviderService {
    /// Wraps a provider; responses larger than `max_response_bytes` are refused.
    pub fn new(provider: Arc<Provider>, metrics: Arc<Metrics>, max_response_bytes: usize) -> Self {
        Self {
            provider,
            metrics,
            max_response_bytes,
        }
    }
}

fn to_response(mut out: MountOutput) -> pb::MountResponse {
    pb::MountResponse {
        object_version: out
            .object_versions
            .drain(..)
            .map(|v| pb::ObjectVersion {
                id: v.id,
                version: v.version,
            })
            .collect(),
        error: None,
        files: out
            .files
            .iter_mut()
            .map(|f| pb::File {
                path: std::mem::take(&mut f.path),
                // Modes are validated to 0..=0o777, so the cast cannot truncate.
                mode: i32::try_from(f.mode).unwrap_or(0o644),
                contents: f.contents.take(),
            })
            .collect(),
    }
}

/// Builds the "too large" message naming the largest files (never their content).
fn too_large(resp: &pb::MountResponse, size: usize, limit: usize) -> Status {
    let mut sizes: Vec<(&str, usize)> = resp
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.len()))
        .collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
    let largest: Vec<String> = sizes
        .iter()
        .take(3)
        .map(|(p, n)| format!("{p} ({n} bytes)"))
        .collect();
    Status::resource_exhausted(format!(
        "mount response is {size} bytes, above the limit of {limit} bytes (the driver's --max-call-recv-msg-size); largest files: {}; mount fewer or smaller objects, or raise both --max-response-bytes and the driver's limit",
        largest.join(", ")
    ))
}

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(
        &self,
        request: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        tracing::debug!(driver_version = %request.get_ref().version, "version");
        self.metrics
            .grpc_request(VERSION_METHOD, "OK", std::time::Duration::ZERO);
        Ok(Response::new(pb::VersionResponse {
            version: API_VERSION.to_owned(),
            runtime_name: RUNTIME_NAME.to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn mount(
        &self,
        request: Request<pb::MountRequest>,
    ) -> Result<Response<pb::MountResponse>, Status> {
        let started = std::time::Instant::now();
        let _in_flight = self.metrics.mount_started();
        let result = self.mount_inner(request.into_inner(), started).await;
        let code = match &result {
            Ok(_) => "OK",
            Err(status) => code_name(status.code()),
        };
        self.metrics
            .grpc_request(MOUNT_METHOD, code, started.elapsed());
        result
    }
}

impl ProviderService {
    async fn mount_inner(
        &self,
        mut req: pb::MountRequest,
        started: std::time::Instant,
    ) -> Result<Response<pb::MountResponse>, Status> {
        let current: Vec<ObjectVersion> = req
            .current_object_version
            .into_iter()
            .map(|v| ObjectVersion {
                id: v.id,
                version: v.version,
            })
            .collect();
        let decoded = MountInput::decode(
            &req.attributes,
            &req.secrets,
            &req.permission,
            req.target_path,
            current,
        );
        // The raw JSON holds the service-account tokens and the nodePublishSecretRef values;
        // decoding copied them into zeroizing containers, so wipe the wire text now.
        req.attributes.zeroize();
        req.secrets.zeroize();
        let input = match decoded {
            Ok(i) => i,
            Err(e) => {
                let err = MountError::from(e);
                let status = Status::from(&err);
                tracing::warn!(
                    code = code_name(status.code()),
                    reason = err.code(),
                    error = %err,
                    "mount request rejected"
                );
                return Err(status);
            }
        };
        let (ns, pod, spc) = input.pod_identity_fields();
        let span = tracing::info_span!(
            "mount",
            pod_namespace = %ns,
            pod_name = %pod,
            secret_provider_class = %spc,
        );
        let provider = self.provider.clone();
        let limit = self.max_response_bytes;
        async move {
            let result = provider.mount(input).await;
            match result {
                Ok(out) => {
                    let files = out.files.len();
                    let resp = to_response(out);
                    let size = resp.encoded_len();
                    if size > limit {
                        let status = too_large(&resp, size, limit);
                        tracing::warn!(
                            code = code_name(status.code()),
                            reason = "response_too_large",
                            size,
                            limit,
                            "mount failed"
                        );
                        return Err(status);
                    }
                    if size > 1024 * 1024 {
                        tracing::warn!(
                            size,
                            "mount response above 1 MiB: syncing it to one Kubernetes Secret will fail"
                        );
                    }
                    tracing::info!(
                        files,
                        bytes = size,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "mount succeeded"
                    );
                    Ok(Response::new(resp))
                }
                Err(err) => {
                    let status = Status::from(&err);
                    // `code` is the gRPC code exactly as the driver's pod event shows it
                    // (`rpc error: code = NotFound desc = ...`); `reason` is our finer one.
                    tracing::warn!(
                        code = code_name(status.code()),
                        reason = err.code(),
                        error = %err,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "mount failed"
                    );
                    Err(status)
                }
            }
        }
        .instrument(span)
        .await
    }
}
