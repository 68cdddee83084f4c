//! Error classes shared by every module: each module's typed error says which
//! class it belongs to, and `grpc/status.rs` alone turns a class into a gRPC code.

/// How a failure should be reported to the caller (see azure-behaviour.md §12.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request or a parameter is wrong; the user must change the SecretProviderClass or pod.
    InvalidArgument,
    /// Something outside the request must be set up first (credentials, tokenRequests,
    /// a readable cloud file), or stored content cannot be rendered as requested.
    FailedPrecondition,
    /// Entra ID, NMI, IMDS or Key Vault rejected the credential.
    Unauthenticated,
    /// Key Vault refused access (access policy, RBAC, firewall).
    PermissionDenied,
    /// The object, version or vault does not exist.
    NotFound,
    /// Throttling not resolved within the budget, or the response is too large.
    ResourceExhausted,
    /// The Mount budget or the caller's deadline ran out.
    DeadlineExceeded,
    /// No request reached the remote service, or the provider is draining; a quick retry may help.
    Unavailable,
    /// A bug or a malformed response from a remote service.
    Internal,
}
