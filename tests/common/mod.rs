//! Shared integration-test harness: test PKI, fake Azure endpoints (Key Vault and hooks for
//! Entra ID / IMDS / NMI) behind a recording forward proxy.

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
pub mod fake_keyvault;
pub mod pki;
pub mod proxy;
