//! Rendering tests against real Key Vault responses and committed PKCS#12 fixtures.
