//! Unix-socket lifecycle of the provider server: create the directory, remove a
//! stale socket, bind with mode 0600, serve until shutdown, drain, unlink.

pub mod authority;
pub mod client;
pub mod proto;
pub mod service;
pub mod status;

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

pub use authority::AuthorityTolerant;
use proto::v1alpha1::csi_driver_provider_server::CsiDriverProviderServer;
pub use service::ProviderService;

/// Problems with the socket or the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket directory cannot be created.
    #[error("cannot create the provider directory {path}: {source}")]
    CreateDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Something other than a socket is in the way.
    #[error("{path} exists and is not a socket; remove it or choose another --provider-dir")]
    NotASocket {
        /// Path.
        path: PathBuf,
    },
    /// Binding, chmod or renaming failed.
    #[error("cannot bind the provider socket {path}: {source}")]
    Bind {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound provider socket, ready to serve.
#[derive(Debug)]
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl BoundSocket {
    /// Final path of the socket.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the directory, removes a stale socket and binds `path` with mode 0600.
///
/// The socket is bound inside a private 0700 staging directory, restricted to
/// 0600 and only then renamed into place, so it is never reachable with looser
/// permissions (the reference narrows the umask for the same reason; changing
/// the process umask would need `unsafe`).
///
/// # Errors
/// [`ServeError`] naming the path.
pub fn bind(path: &Path) -> Result<BoundSocket, ServeError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| ServeError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            tracing::info!(path = %path.display(), "removing stale socket");
            std::fs::remove_file(path).map_err(|source| ServeError::Bind {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServeError::Bind {
                path: path.to_owned(),
                source,
            });
        }
    }
    let bind_err = |source| ServeError::Bind {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rust-azure.sock".to_owned());
    let staging = dir.join(format!(".{file_name}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(bind_err)?;
    let staged = staging.join(&file_name);
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok::<_, io::Error>(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let listener = result.map_err(bind_err)?;
    tracing::info!(path = %path.display(), "listening");
    Ok(BoundSocket {
        listener,
        path: path.to_owned(),
    })
}

impl Connected for AuthorityTolerant<UnixStream> {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Serves the provider and the gRPC health service on `socket` until `shutdown`
/// fires, then lets in-flight calls finish (at most `drain_timeout`) and unlinks
/// the socket.
///
/// # Errors
/// [`ServeError::Transport`] when the server fails.
pub async fn serve(
    socket: BoundSocket,
    service: ProviderService,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    let BoundSocket { listener, path } = socket;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CsiDriverProviderServer<ProviderService>>()
        .await;

    let incoming = futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    return Some((Ok::<_, io::Error>(AuthorityTolerant::new(stream)), listener));
                }
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });

    let signal = shutdown.clone();
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(service))
        .serve_with_incoming_shutdown(incoming, async move { signal.cancelled().await });
    tokio::pin!(server);

    let result = tokio::select! {
        r = &mut server => r.map_err(ServeError::from),
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain_timeout).await;
        } => {
            tracing::warn!(timeout_s = drain_timeout.as_secs(), "drain timeout reached; closing remaining connections");
            Ok(())
        }
    };
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "socket removed"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove socket"),
    }
    result
}
