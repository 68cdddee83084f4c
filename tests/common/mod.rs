//! Shared integration-test harness: test PKI, fake Azure endpoints (Key Vault and hooks for
//! Entra ID / IMDS / NMI) behind a recording forward proxy, a raw HTTP/2 client, and the
//! production server started in-process.

// Each test binary uses a different subset of the harness, and a fake that cannot start must
// fail the test loudly.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

pub mod fake_azure;
pub mod fake_identity;
pub mod fake_keyvault;
pub(crate) mod h2raw;
pub mod log_capture;
pub mod nmi;
pub mod pki;
pub mod provider_process;
pub(crate) mod provider_server;
pub mod proxy;
pub mod reliability;
