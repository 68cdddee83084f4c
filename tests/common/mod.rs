//! Shared helpers of the integration tests.

pub(crate) mod h2raw;
pub(crate) mod provider_server;
