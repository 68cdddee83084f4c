//! Unix-socket lifecycle of the provider server: create the directory, bind with
//! mode 0600 in a staging directory, rename over the path, serve until shutdown,
//! drain, and unlink the path only if it is still the socket this process made.
//!
//! Two instances overlap during a DaemonSet rolling update with `maxSurge` or a
//! restart: the newer one renames its socket over the path (new connections go
//! to it at once, with no moment without a socket), the older one keeps serving
//! the connections it accepted and, at shutdown, leaves the newer one's socket
//! alone because the path no longer names its inode.

pub mod authority;
pub mod client;
pub mod proto;
pub mod service;
pub mod status;

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
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

/// Which file a path names: device and inode. A socket keeps its inode across
/// the rename into place, so this tells our socket from a successor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketId {
    dev: u64,
    ino: u64,
}

impl SocketId {
    /// The identity of whatever `path` names now (the link itself, not a target).
    ///
    /// # Errors
    /// When `path` cannot be examined (for example it does not exist).
    pub fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// A bound provider socket, ready to serve.
#[derive(Debug)]
pub struct BoundSocket {
    listener: UnixListener,
    path: PathBuf,
    id: SocketId,
}

impl BoundSocket {
    /// Final path of the socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Identity of the socket this process created (compare with [`SocketId::of`]).
    pub fn id(&self) -> SocketId {
        self.id
    }
}

/// How long the start-up probe waits for an existing socket to accept.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether something accepts connections on the socket at `path`.
///
/// A connect to a unix socket whose listener is gone fails at once with
/// `ECONNREFUSED`; one that does not complete within [`PROBE_TIMEOUT`] (a full
/// backlog of a live but busy server) counts as answering, so a live socket is
/// never mistaken for a stale one.
fn answers(path: &Path) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = path.to_owned();
    let spawned = std::thread::Builder::new()
        .name("socket-probe".into())
        .spawn(move || {
            let _ = tx.send(std::os::unix::net::UnixStream::connect(probe).is_ok());
        });
    if spawned.is_err() {
        return true;
    }
    rx.recv_timeout(PROBE_TIMEOUT).unwrap_or(true)
}

/// Creates the directory and binds `path` with mode 0600, replacing whatever
/// socket is there atomically.
///
/// The socket is bound inside a private 0700 staging directory, restricted to
/// 0600 and only then renamed into place, so it is never reachable with looser
/// permissions (the reference narrows the umask for the same reason; changing
/// the process umask would need `unsafe`). The rename replaces an existing
/// socket without a moment where the path is missing: a stale one (nothing
/// answers) is simply gone, a live one (an older instance during a rolling
/// update) stops receiving new connections but keeps serving those it has.
/// Nothing is ever deleted from the path here.
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
            if answers(path) {
                tracing::info!(
                    path = %path.display(),
                    "another instance is serving on the socket; taking over new connections (it keeps serving the ones it has)"
                );
            } else {
                tracing::info!(path = %path.display(), "replacing stale socket (nothing answers on it)");
            }
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
    // Old and new pods of a DaemonSet can both be PID 1 in their own PID namespaces while
    // sharing this directory: the name also carries the time, so two binds never share it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Short on purpose: the staged socket's path must fit in sun_path (108 bytes) too, and it
    // is only this directory name plus "/s" longer than the final path.
    let staging = dir.join(format!(".rap-{:x}-{:x}", std::process::id(), nanos));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(bind_err)?;
    let staged = staging.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        // Taken before the rename: afterwards the path may already be a successor's.
        let id = SocketId::of(&staged)?;
        std::fs::rename(&staged, path)?;
        Ok::<_, io::Error>((listener, id))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let (listener, id) = result.map_err(bind_err)?;
    tracing::info!(path = %path.display(), "listening");
    Ok(BoundSocket {
        listener,
        path: path.to_owned(),
        id,
    })
}

/// Unlinks `path` only if it still names the socket `ours`; a successor's
/// socket renamed over it is left in place.
fn remove_if_ours(path: &Path, ours: SocketId) {
    match SocketId::of(path) {
        Ok(id) if id == ours => match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(path = %path.display(), "socket removed"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove socket"),
        },
        Ok(_) => tracing::info!(
            path = %path.display(),
            "socket now belongs to another instance; leaving it in place"
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot examine socket"),
    }
}

impl Connected for AuthorityTolerant<UnixStream> {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// Serves the provider and the gRPC health service on `socket` until `shutdown`
/// fires, then lets in-flight calls finish (at most `drain_timeout`) and unlinks
/// the socket if the path still names it.
///
/// # Errors
/// [`ServeError::Transport`] when the server fails.
pub async fn serve(
    socket: BoundSocket,
    service: ProviderService,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    let BoundSocket { listener, path, id } = socket;
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
    // A successor can rename over the path between the check and the unlink;
    // the window is a few microseconds at the very end of a drain, and closing
    // it would need a lock every instance honours.
    remove_if_ours(&path, id);
    result
}
