//! Tokens of the person at a workstation, from azure_identity's developer credentials.
//!
//! Used only by `rust-azure-provider mount --credential …` (never by the provider server): the
//! SecretProviderClass's identity mode is ignored and every token comes from the Azure CLI
//! (`az account get-access-token`) or azure_identity's developer-tools chain (Azure CLI, then
//! Azure Developer CLI). These credentials run a local process and send no HTTP request
//! themselves; every HTTP request of such a Mount (Key Vault) goes through the project's
//! client, so `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` and `--ca-bundle` apply as in the provider.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, DeveloperToolsCredential,
    DeveloperToolsCredentialOptions,
};
use tokio::time::Instant;

use super::credential::from_sdk_token;
use super::{AccessToken, AuthError, TokenTarget};

/// Which azure_identity developer credential supplies tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeveloperTool {
    /// `AzureCliCredential`: the `az login` of the person running the command.
    AzureCli,
    /// `DeveloperToolsCredential`: Azure CLI, then Azure Developer CLI (`azd auth login`).
    DeveloperTools,
}

impl DeveloperTool {
    /// Name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::AzureCli => "Azure CLI credential",
            Self::DeveloperTools => "developer-tools credential",
        }
    }

    fn login_hint(self) -> &'static str {
        match self {
            Self::AzureCli => {
                "sign in with `az login` (for the vault's tenant: `az login --tenant <tenantId>`) and retry"
            }
            Self::DeveloperTools => "sign in with `az login` or `azd auth login` and retry",
        }
    }
}

/// A workstation credential; replaces every identity mode of the Mounts it serves.
#[derive(Clone)]
pub struct DeveloperCredential {
    tool: DeveloperTool,
}

impl fmt::Debug for DeveloperCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeveloperCredential")
            .field("tool", &self.tool)
            .finish()
    }
}

/// Text azure_identity appends to every credential error; the hint we add replaces it.
const SDK_TROUBLESHOOT_PREFIX: &str = "To troubleshoot, visit";

impl DeveloperCredential {
    /// A credential of `tool`.
    pub fn new(tool: DeveloperTool) -> Self {
        Self { tool }
    }

    /// Which tool.
    pub fn tool(&self) -> DeveloperTool {
        self.tool
    }

    fn build(&self, target: &TokenTarget) -> Result<Arc<dyn TokenCredential>, AuthError> {
        let built: azure_core::Result<Arc<dyn TokenCredential>> = match self.tool {
            // The vault accepts only tokens of its own tenant: ask the CLI for that tenant.
            DeveloperTool::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: Some(target.tenant_id.clone()),
                ..AzureCliCredentialOptions::default()
            }))
            .map(|c| c as Arc<dyn TokenCredential>),
            DeveloperTool::DeveloperTools => {
                DeveloperToolsCredential::new(Some(DeveloperToolsCredentialOptions::default()))
                    .map(|c| c as Arc<dyn TokenCredential>)
            }
        };
        built.map_err(|e| self.failed(&e))
    }

    fn failed(&self, e: &azure_core::Error) -> AuthError {
        let text = e.to_string();
        let detail: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(SDK_TROUBLESHOOT_PREFIX))
            .collect();
        AuthError::Developer {
            tool: self.tool.name(),
            message: format!("{}; {}", detail.join(" "), self.tool.login_hint()),
        }
    }

    /// A token for `target`'s Key Vault scope, within `deadline`.
    ///
    /// # Errors
    /// [`AuthError::Developer`] when the tool is missing, not signed in, fails, or hands out
    /// an expired token; `DeadlineExceeded` when it does not answer in time.
    pub async fn token(
        &self,
        target: &TokenTarget,
        deadline: Instant,
        clock: impl Fn() -> SystemTime,
    ) -> Result<AccessToken, AuthError> {
        let credential = self.build(target)?;
        let scope = target.scope();
        let scopes = [scope.as_str()];
        let call = credential.get_token(&scopes, None);
        let sdk_token = match tokio::time::timeout_at(deadline, call).await {
            Err(_) => {
                return Err(AuthError::Developer {
                    tool: self.tool.name(),
                    message: "did not answer before the deadline (--timeout)".into(),
                });
            }
            Ok(Err(e)) => return Err(self.failed(&e)),
            Ok(Ok(t)) => t,
        };
        let now = clock();
        let token = from_sdk_token(sdk_token, now);
        if token.expires_on <= now {
            let at = humantime::format_rfc3339_seconds(token.expires_on);
            return Err(AuthError::Developer {
                tool: self.tool.name(),
                message: format!(
                    "handed out a token that expired at {at}; {}",
                    self.tool.login_hint()
                ),
            });
        }
        Ok(token)
    }
}
