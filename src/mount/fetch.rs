//! Fetching and rendering one object (or one version history) from Key Vault.
//! Objects of a Mount are fetched concurrently by the caller; the versions of
//! one history are fetched concurrently here.

use tokio::time::Instant;

use super::files::{self, PlannedKind};
use super::params::{ObjectSpec, ObjectType};
use super::{MountError, ObjectVersion, OutputFile};
use crate::keyvault::model::{SecretBundle, VersionItem};
use crate::keyvault::{Caller, KeyVaultClient, ObjectKind};
use crate::render::{self, Jwk, RenderOptions, RenderWarning};
use crate::secret::{SecretBytes, SecretString};

/// One file of one object, with the id/version to report for it (`None` for `jmesPath`
/// files: the object's own entry covers them).
#[derive(Debug)]
pub(crate) struct Emitted {
    pub(crate) file: OutputFile,
    pub(crate) version: Option<ObjectVersion>,
}

/// What the fetch of one object needs besides the spec and its vault.
pub(crate) struct FetchContext<'a> {
    pub(crate) keyvault: &'a KeyVaultClient,
    pub(crate) token: &'a SecretString,
    /// Object-cache partition (the principal's digest); `None` with the cache off.
    pub(crate) scope: Option<&'a [u8; 32]>,
    pub(crate) deadline: Instant,
    pub(crate) render: &'a RenderOptions,
    pub(crate) default_mode: u32,
}

impl FetchContext<'_> {
    fn caller(&self) -> Caller<'_> {
        Caller {
            token: self.token,
            scope: self.scope,
        }
    }
}

fn kind_of(t: ObjectType) -> ObjectKind {
    match t {
        ObjectType::Secret => ObjectKind::Secret,
        ObjectType::Key => ObjectKind::Key,
        ObjectType::Cert => ObjectKind::Certificate,
    }
}

/// `<type>/<name>[@version]`, the way every error names an object, plus ` in vault <vault>`
/// for an object with its own `keyvaultName`.
pub(crate) fn describe(spec: &ObjectSpec, version: Option<&str>) -> String {
    let object = match version {
        Some(v) => format!("{}/{}@{v}", spec.object_type.as_str(), spec.object_name),
        None => format!("{}/{}", spec.object_type.as_str(), spec.object_name),
    };
    match &spec.keyvault_name {
        Some(vault) => format!("{object} in vault {vault}"),
        None => object,
    }
}

/// Fetches every file `spec` produces from the vault at `vault_url`, in emission order.
pub(crate) async fn fetch_object(
    ctx: &FetchContext<'_>,
    spec: &ObjectSpec,
    vault_url: &str,
) -> Result<Vec<Emitted>, MountError> {
    if !spec.is_history() {
        return fetch_version(ctx, spec, vault_url, spec.object_version.as_deref(), None).await;
    }
    let items = ctx
        .keyvault
        .list_versions(
            vault_url,
            kind_of(spec.object_type),
            &spec.object_name,
            ctx.caller(),
            ctx.deadline,
        )
        .await?;
    let versions = select_history(items, spec)
        .map_err(|object| MountError::HistoryStartNotFound { object })?;
    let fetches = versions.iter().enumerate().map(|(i, v)| {
        let v = v.as_str();
        async move { fetch_version(ctx, spec, vault_url, Some(v), Some(i)).await }
    });
    let per_version = futures::future::try_join_all(fetches).await?;
    Ok(per_version.into_iter().flatten().collect())
}

/// Enabled versions, newest first, starting at the pinned version (or the
/// newest), exactly `objectVersionHistory` of them at most (quirk #1). The
/// error names the object whose pinned start version is missing.
fn select_history(items: Vec<VersionItem>, spec: &ObjectSpec) -> Result<Vec<String>, String> {
    let mut enabled: Vec<(i64, String)> = items
        .iter()
        .filter(|i| i.is_enabled())
        .filter_map(|i| i.version().map(|v| (i.created(), v.to_owned())))
        .collect();
    // Stable sort on creation time keeps the service order for equal times.
    enabled.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
    let start = match spec.object_version.as_deref() {
        None => 0,
        Some(pinned) => enabled
            .iter()
            .position(|(_, v)| v == pinned)
            .ok_or_else(|| describe(spec, Some(pinned)))?,
    };
    let n = usize::try_from(spec.object_version_history).unwrap_or(usize::MAX);
    Ok(enabled
        .into_iter()
        .skip(start)
        .take(n)
        .map(|(_, v)| v)
        .collect())
}

async fn fetch_version(
    ctx: &FetchContext<'_>,
    spec: &ObjectSpec,
    vault_url: &str,
    version: Option<&str>,
    history_index: Option<usize>,
) -> Result<Vec<Emitted>, MountError> {
    let kv = ctx.keyvault;
    let (rendered, fetched_version) = match spec.object_type {
        ObjectType::Secret => {
            let bundle = kv
                .get_secret(
                    vault_url,
                    &spec.object_name,
                    version,
                    ctx.caller(),
                    ctx.deadline,
                )
                .await?;
            let fetched = bundle.version().map(str::to_owned);
            let cert_backed = bundle.kid.as_deref().is_some_and(|k| !k.is_empty());
            // The fetched value moves into rendering: no second copy of the secret.
            let SecretBundle {
                value,
                content_type,
                ..
            } = bundle;
            let rendered = render::render_secret(
                value,
                content_type.as_deref(),
                cert_backed,
                spec.object_format,
                spec.object_encoding,
                ctx.render,
            )
            .map_err(render_err(spec, version))?;
            (rendered, fetched)
        }
        ObjectType::Key => {
            let bundle = kv
                .get_key(
                    vault_url,
                    &spec.object_name,
                    version,
                    ctx.caller(),
                    ctx.deadline,
                )
                .await?;
            let jwk = Jwk {
                kty: Some(bundle.key.kty.clone()),
                crv: bundle.key.crv.clone(),
                n: bundle.key.n.clone(),
                e: bundle.key.e.clone(),
                x: bundle.key.x.clone(),
                y: bundle.key.y.clone(),
            };
            let main = render::render_key(&jwk).map_err(render_err(spec, version))?;
            (single(main), bundle.version().map(str::to_owned))
        }
        ObjectType::Cert => {
            let bundle = kv
                .get_certificate(
                    vault_url,
                    &spec.object_name,
                    version,
                    ctx.caller(),
                    ctx.deadline,
                )
                .await?;
            let main =
                render::render_certificate(&bundle.cer).map_err(|source| MountError::Render {
                    object: describe(spec, version),
                    source,
                })?;
            (single(main), bundle.version().map(str::to_owned))
        }
    };
    let Some(fetched_version) = fetched_version else {
        return Err(MountError::MalformedResponse {
            object: describe(spec, version),
            what: "the response has no version in its id",
        });
    };
    for w in &rendered.warnings {
        match w {
            RenderWarning::IncompleteChain {
                certificates,
                covered,
            } => tracing::warn!(
                object_type = spec.object_type.as_str(),
                object_name = %spec.object_name,
                certificates,
                covered,
                "certificate chain incomplete; certificates kept in PFX order"
            ),
        }
    }
    let id = files::object_id(spec, history_index);
    let mode = files::file_mode(spec, ctx.default_mode);
    // Extracted before the main file moves into the output; parsing sees the value after
    // objectEncoding, exactly the bytes of the object's own file.
    let mut extracted = Vec::with_capacity(spec.jmes_path.len());
    for (i, entry) in spec.jmes_path.iter().enumerate() {
        let contents =
            render::extract::extract(rendered.main.expose(), &entry.path).map_err(|source| {
                MountError::Extract(Box::new(super::ExtractFailure {
                    object: describe(spec, version),
                    path: entry.path.clone(),
                    object_alias: entry.object_alias.clone(),
                    source,
                }))
            })?;
        extracted.push(Emitted {
            file: OutputFile {
                path: files::output_path(spec, None, PlannedKind::Extracted(i)),
                mode: entry.file_permission.unwrap_or(mode),
                contents,
            },
            version: None,
        });
    }
    let mut out = Vec::with_capacity(3 + extracted.len());
    let mut push = |kind: PlannedKind, contents: SecretBytes| {
        out.push(Emitted {
            file: OutputFile {
                path: files::output_path(spec, history_index, kind),
                mode,
                contents,
            },
            version: Some(ObjectVersion {
                id: id.clone(),
                version: fetched_version.clone(),
            }),
        });
    };
    let render::Rendered { main, crt, key, .. } = rendered;
    if let Some(crt) = crt {
        push(PlannedKind::Crt, crt);
    }
    if let Some(key) = key {
        push(PlannedKind::Key, key);
    }
    push(PlannedKind::Main, main);
    out.extend(extracted);
    Ok(out)
}

/// Names the object in a rendering error.
fn render_err<'a>(
    spec: &'a ObjectSpec,
    version: Option<&'a str>,
) -> impl FnOnce(render::RenderError) -> MountError + 'a {
    move |source| MountError::Render {
        object: describe(spec, version),
        source,
    }
}

fn single(main: SecretBytes) -> render::Rendered {
    render::Rendered {
        main,
        crt: None,
        key: None,
        warnings: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyvault::model::VersionPage;

    fn items(json: &str) -> Vec<VersionItem> {
        serde_json::from_str::<VersionPage>(json).unwrap().value
    }

    const PAGE: &str = r#"{"value":[
        {"id":"https://v.vault.azure.net/secrets/s/aaa","attributes":{"enabled":true,"created":100}},
        {"id":"https://v.vault.azure.net/secrets/s/ccc","attributes":{"enabled":true,"created":300}},
        {"id":"https://v.vault.azure.net/secrets/s/ddd","attributes":{"enabled":false,"created":400}},
        {"id":"https://v.vault.azure.net/secrets/s/bbb","attributes":{"enabled":true,"created":200}}
    ],"nextLink":null}"#;

    #[test]
    fn history_is_newest_first_exactly_n_and_skips_disabled() {
        let spec = ObjectSpec::secret("s").with_history(2);
        assert_eq!(select_history(items(PAGE), &spec).unwrap(), ["ccc", "bbb"]);
        let spec = ObjectSpec::secret("s").with_history(10);
        assert_eq!(
            select_history(items(PAGE), &spec).unwrap(),
            ["ccc", "bbb", "aaa"]
        );
    }

    #[test]
    fn history_starts_at_the_pinned_version_or_fails() {
        let spec = ObjectSpec::secret("s").with_history(2).with_version("bbb");
        assert_eq!(select_history(items(PAGE), &spec).unwrap(), ["bbb", "aaa"]);
        let spec = ObjectSpec::secret("s").with_history(2).with_version("ddd");
        let object = select_history(items(PAGE), &spec).unwrap_err();
        assert_eq!(object, "secret/s@ddd");
        let err = MountError::HistoryStartNotFound { object };
        assert_eq!(err.class(), crate::error::ErrorClass::NotFound);
    }
}
