//! rust-azure-provider: a Secrets Store CSI Driver provider for Azure Key Vault.
//!
//! The driver calls `Mount` over a unix socket; the provider fetches Key Vault
//! secrets, keys and certificates and returns them as files. See README.md.

pub mod admin;
pub mod app;
pub mod auth;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod keyvault;
pub mod metrics;
pub mod mount;
pub mod render;
pub mod secret;
pub mod shutdown;
pub mod spc;
pub mod telemetry;
pub mod writer;
