//! The identity Entra ID (or IMDS, or NMI) authorises for a Mount: the dimension along which
//! Key Vault responses may be shared between Mounts (beyond.md §1 and Appendix A).
//!
//! | Mode | Principal |
//! |---|---|
//! | service principal, workload identity, identity binding | authority host, tenant, client id |
//! | VM managed identity | IMDS endpoint, identity id (`system` or the user-assigned id) |
//! | pod identity (NMI) | the pod: NMI endpoint, namespace, name, UID |
//!
//! Every principal also carries the Key Vault resource its token is for.
//!
//! A [`Principal`] can only be obtained together with an access token
//! ([`super::TokenProvider::authorize`]): either the token cache held a token for this Mount's
//! exact credential material (its key is the digest of that material, so the same material was
//! accepted before for the same authority, tenant and client id), or the token service has just
//! accepted the material. It is computed from the identity fields of the request, never from
//! claims inside a presented token: a pod can supply its own `serviceAccount.tokens` attribute
//! when the CSIDriver requests none, and such a token only reaches shared state after Entra ID
//! accepted it.

use std::fmt;

use super::cache::KeyBuilder;
use super::{AccessToken, TokenRequest, imds};
use crate::mount::params::IdentityMode;

/// Digest of the identity a token was issued to (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Principal([u8; 32]);

impl Principal {
    /// The raw digest (the identity dimension of the object cache).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The principal of `req`; only [`super::TokenProvider::authorize`] calls this, after the
    /// request's own credential was accepted.
    pub(super) fn of(req: &TokenRequest<'_>, imds_endpoint: &str, nmi_endpoint: &str) -> Self {
        let t = req.target;
        let mut b = KeyBuilder::with_domain("rust-azure-principal-v1");
        match req.identity {
            // One Entra ID application, whichever credential form proved it.
            IdentityMode::ServicePrincipal { client_id, .. }
            | IdentityMode::WorkloadIdentity { client_id, .. }
            | IdentityMode::AzureTokenProxy { client_id, .. } => {
                b.field("entra_application")
                    .field(&t.authority_host)
                    .field(&t.tenant_id)
                    .field(client_id);
            }
            // Every pod of the node may ask IMDS for any identity assigned to the VM.
            IdentityMode::VmManagedIdentity { user_assigned } => {
                b.field("vm_managed_identity")
                    .field(imds_endpoint)
                    .field(&imds::identity_id(user_assigned.as_ref()));
            }
            // NMI decides per pod; nothing narrower than the pod is known here.
            IdentityMode::PodIdentity => {
                b.field("pod_identity")
                    .field(nmi_endpoint)
                    .field(req.pod.namespace)
                    .field(req.pod.name)
                    .field(req.pod.uid);
            }
        }
        b.field(t.resource());
        Self(*b.finish().as_bytes())
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal({})", hex::encode(&self.0[..6]))
    }
}

/// An access token together with the principal this Mount's credential was accepted for.
#[derive(Clone, Debug)]
pub struct Authorized {
    /// The token to send to Key Vault.
    pub token: AccessToken,
    /// Who it was issued to.
    pub principal: Principal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{PodRef, TokenTarget};

    fn target(tenant: &str) -> TokenTarget {
        TokenTarget {
            authority_host: "https://login.microsoftonline.com/".into(),
            tenant_id: tenant.into(),
            resource: "https://vault.azure.net".into(),
        }
    }

    fn wi(client_id: &str, sa_token: &str) -> IdentityMode {
        IdentityMode::WorkloadIdentity {
            client_id: client_id.into(),
            service_account_token: sa_token.into(),
        }
    }

    fn of(identity: &IdentityMode, tenant: &str, pod: &str) -> Principal {
        let t = target(tenant);
        let req = TokenRequest {
            identity,
            target: &t,
            pod: PodRef {
                namespace: "ns",
                name: pod,
                uid: "uid",
            },
        };
        Principal::of(&req, "http://169.254.169.254", "http://localhost:2579")
    }

    #[test]
    fn pods_of_one_application_share_and_other_applications_do_not() {
        let a1 = of(&wi("app-a", "sa-token-1"), "t", "p1");
        assert_eq!(a1, of(&wi("app-a", "sa-token-2"), "t", "p2"));
        // The same application proven by a client secret is the same Entra ID principal.
        let sp = IdentityMode::ServicePrincipal {
            client_id: "app-a".into(),
            client_secret: "s".into(),
        };
        assert_eq!(a1, of(&sp, "t", "p3"));
        assert_ne!(a1, of(&wi("app-b", "sa-token-1"), "t", "p1"));
        assert_ne!(a1, of(&wi("app-a", "sa-token-1"), "other-tenant", "p1"));
    }

    #[test]
    fn managed_identities_are_per_identity_and_nmi_per_pod() {
        let system = IdentityMode::VmManagedIdentity {
            user_assigned: None,
        };
        assert_eq!(of(&system, "t", "p1"), of(&system, "t", "p2"));
        assert_ne!(of(&system, "t", "p1"), of(&wi("app-a", "x"), "t", "p1"));
        let nmi = IdentityMode::PodIdentity;
        assert_ne!(of(&nmi, "t", "p1"), of(&nmi, "t", "p2"));
        assert_eq!(of(&nmi, "t", "p1"), of(&nmi, "t", "p1"));
    }

    #[test]
    fn debug_shows_a_short_prefix_only() {
        let d = format!("{:?}", of(&wi("app-a", "secret-sa"), "t", "p"));
        assert!(d.starts_with("Principal(") && d.len() == "Principal()".len() + 12);
        assert!(!d.contains("secret-sa") && !d.contains("app-a"));
    }
}
