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

/// An error and its causes on one line, `outer: cause: root cause`, each text once: many of
/// our errors already print their source in their own message (thiserror `{source}`), and
/// printing the chain naively would repeat it.
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let part = e.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = e.source();
    }
    text
}

#[cfg(test)]
mod chain_tests {
    use super::chain_text;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Terse(#[source] std::io::Error);

    #[test]
    fn each_cause_appears_once() {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(chain_text(&Repeats(refused())), "outer: refused");
        assert_eq!(chain_text(&Terse(refused())), "transport error: refused");
    }
}
