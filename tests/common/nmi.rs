//! NMI where the provider always looks for it: `127.0.0.1:2579` (aad-pod-identity's constant
//! port, and loopback is never proxied). The port is relayed byte for byte to a fake's plain-HTTP
//! server, which routes by the Host header (`localhost:2579` → host `localhost`) and records the
//! request like any other.
//!
//! There is one such port per machine: a claim first takes an exclusive lock on a file in the
//! temporary directory, so tests in one binary, in several binaries and in several checkouts take
//! turns instead of failing. Something else listening on the port fails the test.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// aad-pod-identity's NMI port.
pub const NMI_PORT: u16 = 2579;
const LOCK_FILE: &str = "rust-azure-provider-tests-nmi-2579.lock";
/// The previous holder's listener closes asynchronously after its lock is released.
const BIND_RETRY: Duration = Duration::from_secs(10);

/// `127.0.0.1:2579` relayed to a fake; released on drop.
pub struct NmiPort {
    task: JoinHandle<()>,
    /// Held for the claim's lifetime; closing it releases the lock.
    _lock: std::fs::File,
}

impl NmiPort {
    /// Waits for the port (other tests may hold it), then relays it to `target`.
    pub async fn claim(target: SocketAddr) -> Self {
        let path = std::env::temp_dir().join(LOCK_FILE);
        let lock = tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            file.lock()
                .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
            file
        })
        .await
        .expect("lock task");
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", NMI_PORT)).await {
                Ok(l) => break l,
                Err(_) if started.elapsed() < BIND_RETRY => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!(
                    "cannot listen on 127.0.0.1:{NMI_PORT} for the fake NMI: {e}; something other than these tests uses the port"
                ),
            }
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { task, _lock: lock }
    }
}

impl Drop for NmiPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}
