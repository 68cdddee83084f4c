//! `AuthError`: why a token could not be obtained, with its error class and metric code.

use std::time::Duration;

use crate::error::ErrorClass;

/// Which token service an error is about (bounded; used in messages and metric codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenService {
    /// Microsoft Entra ID token endpoint.
    EntraId,
    /// The AKS token proxy in front of Entra ID (identity binding).
    TokenProxy,
    /// The instance metadata service.
    Imds,
    /// aad-pod-identity's node managed identity agent.
    Nmi,
}

impl TokenService {
    /// Human-readable name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::EntraId => "Entra ID",
            Self::TokenProxy => "the AKS token proxy",
            Self::Imds => "IMDS",
            Self::Nmi => "NMI",
        }
    }
}

/// A failure to obtain an access token. Messages never contain tokens, secrets or assertions.
///
/// `Clone` because one in-flight request's result is shared with every coalesced waiter.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuthError {
    /// The token service answered and refused the credential (Entra ID 400/401 with an
    /// `AADSTS` code, IMDS 400, NMI non-200).
    #[error("{message}")]
    Rejected {
        /// Where.
        service: TokenService,
        /// HTTP status.
        status: u16,
        /// The complete user-facing message (error code, first line of the description, hint).
        message: String,
    },
    /// 429 still returned when the retry budget or the deadline ran out.
    #[error("{} is throttling token requests (429 Too Many Requests){}; retry budget exhausted", .service.name(), retry_after_text(*.retry_after))]
    Throttled {
        /// Where.
        service: TokenService,
        /// The advised wait of the last 429, if any.
        retry_after: Option<Duration>,
    },
    /// Server errors (5xx) persisted through the retries.
    #[error("{} answered with status {status} to the token request after retries", .service.name())]
    ServerError {
        /// Where.
        service: TokenService,
        /// The last HTTP status.
        status: u16,
    },
    /// No request reached the service (connection refused, DNS, TLS), after retries.
    #[error("{} is not reachable at {endpoint}: {detail}{}", .service.name(), hint_text(.hint))]
    Unreachable {
        /// Where.
        service: TokenService,
        /// Scheme, host and port (no path or query).
        endpoint: String,
        /// The transport's description of the failure.
        detail: String,
        /// What to check.
        hint: Option<&'static str>,
    },
    /// The caller's deadline passed before a token was obtained.
    #[error("timed out waiting for a token from {}", .service.name())]
    DeadlineExceeded {
        /// Where.
        service: TokenService,
    },
    /// The service answered 200 with something that is not a usable token response.
    #[error("{message}")]
    InvalidResponse {
        /// Where.
        service: TokenService,
        /// What was wrong (never the body itself: it may hold a token).
        message: String,
    },
    /// Pod identity needs the pod's name and namespace from the driver.
    #[error(
        "pod information is not available. deploy a CSIDriver object to set podInfoOnMount: true"
    )]
    PodInfoMissing,
    /// The identity-binding transport (token proxy URL, SNI, CA) could not be built.
    #[error("proxy transport not available: {0}")]
    ProxyUnavailable(String),
    /// The tenant id cannot be put into the token endpoint path.
    #[error(
        "tenantID {0:?} is not valid: only letters, digits, '.' and '-' are allowed; set tenantID to the directory (tenant) ID"
    )]
    InvalidTenant(String),
    /// The workstation's developer credential (`mount --credential`) gave no usable token.
    #[error("{tool}: {message}")]
    Developer {
        /// Which credential.
        tool: &'static str,
        /// What failed and what to do (never a token).
        message: String,
    },
    /// A bug.
    #[error("internal error while obtaining a token: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

fn retry_after_text(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!(", advised wait {}s", d.as_secs()),
        None => String::new(),
    }
}

fn hint_text(h: &Option<&'static str>) -> String {
    match h {
        Some(h) => format!(" ({h})"),
        None => String::new(),
    }
}

impl AuthError {
    /// The class for the gRPC status (azure-behaviour.md §12.1).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Rejected { .. } => ErrorClass::Unauthenticated,
            Self::Throttled { .. } => ErrorClass::ResourceExhausted,
            // A 5xx that survived our retries reached the service: Unavailable would make the
            // driver re-issue the Mount at once (protocol.md §3.1), so only "never reached" is.
            Self::ServerError { .. } => ErrorClass::Internal,
            Self::Unreachable { .. } => ErrorClass::Unavailable,
            Self::DeadlineExceeded { .. } => ErrorClass::DeadlineExceeded,
            Self::InvalidResponse { service, .. } => match service {
                // NMI answering 200 without a token is NMI declining the pod (reference
                // treats it like a failed credential).
                TokenService::Nmi => ErrorClass::Unauthenticated,
                _ => ErrorClass::Internal,
            },
            Self::PodInfoMissing | Self::ProxyUnavailable(_) => ErrorClass::FailedPrecondition,
            Self::InvalidTenant(_) => ErrorClass::InvalidArgument,
            Self::Developer { .. } => ErrorClass::Unauthenticated,
            Self::Internal { .. } => ErrorClass::Internal,
        }
    }

    /// Bounded snake_case code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected { service, .. } => match service {
                TokenService::EntraId => "entra_id_rejected",
                TokenService::TokenProxy => "token_proxy_rejected",
                TokenService::Imds => "imds_rejected",
                TokenService::Nmi => "nmi_rejected",
            },
            Self::Throttled { .. } => "token_throttled",
            Self::ServerError { .. } => "token_server_error",
            Self::Unreachable { .. } => "token_endpoint_unreachable",
            Self::DeadlineExceeded { .. } => "token_deadline_exceeded",
            Self::InvalidResponse { .. } => "token_response_invalid",
            Self::PodInfoMissing => "pod_info_missing",
            Self::ProxyUnavailable(_) => "token_proxy_unavailable",
            Self::InvalidTenant(_) => "invalid_tenant",
            Self::Developer { .. } => "developer_credential_failed",
            Self::Internal { .. } => "auth_internal",
        }
    }
}
