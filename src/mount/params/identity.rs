//! Identity mode selection (azure-behaviour.md §5.1) and extraction of the material each mode
//! needs: nodePublishSecretRef credentials or a service-account token for one audience.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::{
    CLIENT_ID, IdentityError, IdentityMode, ParamWarning, TokenError, USER_ASSIGNED_IDENTITY_ID,
    UserAssignedIdentity, WarningKind,
};
use crate::mount::MountInput;
use crate::mount::request::TOKENS_KEY;
use crate::secret::SecretString;

/// Audience of the token used for workload identity.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Audience of the token used for AKS identity binding.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// The identity flags after boolean parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ModeFlag {
    /// No flag set: workload identity or service principal.
    None,
    /// `usePodIdentity`.
    PodIdentity,
    /// `useVMManagedIdentity`.
    VmManagedIdentity,
    /// `useAzureTokenProxy`.
    AzureTokenProxy,
}

impl ModeFlag {
    /// The reference's mode name in `failed to build auth config for mode <m>`.
    pub(super) fn reference_name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::PodIdentity => "PodIdentity",
            Self::VmManagedIdentity => "VMManagedIdentity",
            Self::AzureTokenProxy => "AzureTokenProxy",
        }
    }
}

/// Builds the identity for `flag`. `client_id` and `user_assigned_id` are trimmed parameter values.
pub(super) fn select_identity(
    flag: ModeFlag,
    client_id: &str,
    user_assigned_id: &str,
    input: &MountInput,
    warnings: &mut Vec<ParamWarning>,
) -> Result<IdentityMode, IdentityError> {
    let ignored = |key: &str, warnings: &mut Vec<ParamWarning>| {
        warnings.push(ParamWarning {
            key: key.to_owned(),
            suggestion: None,
            object_index: None,
            kind: WarningKind::IgnoredInMode {
                mode: flag.reference_name(),
            },
        });
    };
    if flag != ModeFlag::VmManagedIdentity && !user_assigned_id.is_empty() {
        ignored(USER_ASSIGNED_IDENTITY_ID, warnings);
    }
    match flag {
        ModeFlag::PodIdentity | ModeFlag::VmManagedIdentity => {
            // Quirk #16: the reference parses workload identity tokens here and fails on them
            // even though these modes never use a token.
            if !client_id.is_empty() {
                ignored(CLIENT_ID, warnings);
            }
            if flag == ModeFlag::PodIdentity {
                Ok(IdentityMode::PodIdentity)
            } else {
                Ok(IdentityMode::VmManagedIdentity {
                    user_assigned: parse_user_assigned(user_assigned_id),
                })
            }
        }
        ModeFlag::AzureTokenProxy => {
            if client_id.is_empty() {
                return Err(IdentityError::BindingClientIdMissing);
            }
            let tokens = tokens_text(input).ok_or(IdentityError::BindingTokensMissing)?;
            let token = token_for_audience(tokens, IDENTITY_BINDING_AUDIENCE)
                .map_err(IdentityError::BindingToken)?;
            Ok(IdentityMode::AzureTokenProxy {
                client_id: client_id.to_owned(),
                service_account_token: token,
            })
        }
        ModeFlag::None if !client_id.is_empty() => {
            // With clientID set the reference never falls back to the service principal.
            let tokens =
                tokens_text(input).ok_or(IdentityError::WorkloadTokens(TokenError::NotFound {
                    audience: WORKLOAD_IDENTITY_AUDIENCE,
                }))?;
            let token = token_for_audience(tokens, WORKLOAD_IDENTITY_AUDIENCE)
                .map_err(IdentityError::WorkloadTokens)?;
            Ok(IdentityMode::WorkloadIdentity {
                client_id: client_id.to_owned(),
                service_account_token: token,
            })
        }
        ModeFlag::None => service_principal(input),
    }
}

/// Quirk #27: an ARM resource id is recognised (sent as IMDS `msi_res_id`); anything else,
/// including every GUID, stays a client id as in the reference.
fn parse_user_assigned(value: &str) -> Option<UserAssignedIdentity> {
    if value.is_empty() {
        return None;
    }
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("/subscriptions/")
        && lower.contains("/providers/microsoft.managedidentity/userassignedidentities/")
    {
        Some(UserAssignedIdentity::ResourceId(value.to_owned()))
    } else {
        Some(UserAssignedIdentity::ClientId(value.to_owned()))
    }
}

fn service_principal(input: &MountInput) -> Result<IdentityMode, IdentityError> {
    let secrets = input
        .secrets
        .as_ref()
        .ok_or(IdentityError::SecretsMissing)?;
    let client_id = secrets
        .get_ignore_case("clientid")
        .map(|s| s.expose().trim())
        .filter(|s| !s.is_empty())
        .ok_or(IdentityError::ClientIdMissing)?;
    let client_secret = secrets
        .get_ignore_case("clientsecret")
        .map(|s| s.expose().trim())
        .filter(|s| !s.is_empty())
        .ok_or(IdentityError::ClientSecretMissing)?;
    Ok(IdentityMode::ServicePrincipal {
        // A client id identifies an application; it is not secret.
        client_id: client_id.to_owned(),
        client_secret: SecretString::new(client_secret.to_owned()),
    })
}

/// The tokens JSON: the attribute, else (Kubernetes 1.35+ `serviceAccountTokenInSecrets`) the
/// same key inside `secrets`. `None` when neither holds a non-blank value.
fn tokens_text(input: &MountInput) -> Option<&SecretString> {
    let non_blank = |s: &&SecretString| !s.expose().trim().is_empty();
    input
        .service_account_tokens
        .as_ref()
        .filter(non_blank)
        .or_else(|| {
            input
                .secrets
                .as_ref()
                .and_then(|s| s.get(TOKENS_KEY))
                .filter(non_blank)
        })
}

/// One audience's entry in the tokens JSON (Kubernetes `TokenRequestStatus`).
#[derive(Deserialize)]
struct WireToken {
    #[serde(default, deserialize_with = "deserialize_secret")]
    token: Option<SecretString>,
    #[serde(default, rename = "expirationTimestamp")]
    expiration_timestamp: Option<String>,
}

fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::new))
}

/// Extracts the token for `audience`.
///
/// # Errors
/// [`TokenError`] for malformed JSON (described by position only, never content), a malformed
/// `expirationTimestamp` (the reference's Go `time.Time` decoding fails on it too), or a missing
/// or empty token.
pub(super) fn token_for_audience(
    tokens: &SecretString,
    audience: &'static str,
) -> Result<SecretString, TokenError> {
    let mut map: BTreeMap<String, WireToken> =
        serde_json::from_str(tokens.expose()).map_err(|e| TokenError::Unmarshal {
            detail: describe_json_error(&e),
            audience,
        })?;
    // The whole value is secret material, audience keys included: name nothing from it.
    if map.values().any(|e| {
        e.expiration_timestamp
            .as_deref()
            .is_some_and(|ts| !is_rfc3339(ts))
    }) {
        return Err(TokenError::Unmarshal {
            detail: "an expirationTimestamp is not an RFC 3339 time".to_owned(),
            audience,
        });
    }
    map.remove(audience)
        .and_then(|e| e.token)
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::AudienceMissing { audience })
}

/// Describes a serde_json error by category and position only: the input holds tokens.
fn describe_json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value type",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, the layout Go's `time.RFC3339` accepts.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, max: u32| -> bool {
        b.get(range.clone()).is_some_and(|d| {
            d.iter().all(u8::is_ascii_digit)
                && d.iter().fold(0u32, |acc, x| acc * 10 + u32::from(x - b'0')) <= max
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(num(0..4, 9999)
        && at(4, b'-')
        && num(5..7, 12)
        && at(7, b'-')
        && num(8..10, 31)
        && at(10, b'T')
        && num(11..13, 23)
        && at(13, b':')
        && num(14..16, 59)
        && at(16, b':')
        && num(17..19, 60))
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            num(i + 1..i + 3, 23) && at(i + 3, b':') && num(i + 4..i + 6, 59) && i + 6 == b.len()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        for ok in [
            "2026-05-01T10:00:00Z",
            "2026-05-01T10:00:00.123456789Z",
            "2026-05-01T10:00:00+02:00",
            "2026-05-01T10:00:00-07:30",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-05-01",
            "2026-05-01 10:00:00Z",
            "2026-13-01T10:00:00Z",
            "2026-05-01T10:00:00",
            "2026-05-01T10:00:00.Z",
            "2026-05-01T10:00:00+0200",
            "2026-05-01T10:00:00Zjunk",
            "tomorrow",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn user_assigned_identity_kinds() {
        assert_eq!(parse_user_assigned(""), None);
        assert_eq!(
            parse_user_assigned("00000000-0000-0000-0000-000000000000"),
            Some(UserAssignedIdentity::ClientId(
                "00000000-0000-0000-0000-000000000000".into()
            ))
        );
        let rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
        assert_eq!(
            parse_user_assigned(rid),
            Some(UserAssignedIdentity::ResourceId(rid.into()))
        );
        let lower = rid.to_ascii_lowercase();
        assert_eq!(
            parse_user_assigned(&lower),
            Some(UserAssignedIdentity::ResourceId(lower.clone()))
        );
        assert!(matches!(
            parse_user_assigned("/subscriptions/s/resourceGroups/rg"),
            Some(UserAssignedIdentity::ClientId(_))
        ));
    }
}
