//! The provider's own log, captured in memory for the suites that run the server in-process, and
//! the secret scan every suite applies to its logs.
//!
//! One global subscriber per test binary records every event of the crate at trace level, so a
//! debug line that printed a token, a client secret or rendered key material would be caught by
//! whichever test scans after it (tests of one binary share the buffer; each scans all of it).

use std::io;
use std::sync::{Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Sink;

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        BUFFER
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary; later calls do nothing).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "rust_azure_provider=trace,debug",
            ))
            .with_writer(|| Sink)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
    });
}

/// Everything captured so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&BUFFER.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

/// Fails when `text` contains any of `sensitive` (those of 6 characters or more; shorter ones
/// would match by accident).
pub fn assert_absent(text: &str, sensitive: &[String], what: &str) {
    for s in sensitive.iter().filter(|s| s.len() >= 6) {
        assert!(
            !text.contains(s.as_str()),
            "{what} contains secret material ({} chars starting {:?})",
            s.len(),
            s.chars().take(3).collect::<String>()
        );
    }
}

/// Fails unless the captured log holds the provider's events (else the scan would be vacuous)
/// and is free of `sensitive`.
pub fn assert_clean(sensitive: &[String]) {
    let logs = logs();
    assert!(
        logs.contains(" rust_azure_provider::"),
        "the provider logged nothing; the secret scan would be vacuous"
    );
    assert_absent(&logs, sensitive, "the provider's log");
}

/// The strings a log line leaking `content` (a rendered file or a stored value) would contain:
/// the whole text and each long line of it (PEM bodies, decoded values), or for binary content
/// (PKCS#12, raw keys) its base64, its hex and the start of its `Debug` form.
pub fn material(content: &[u8]) -> Vec<String> {
    let mut out = vec![];
    match std::str::from_utf8(content) {
        Ok(text) => {
            out.push(text.trim().to_owned());
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                    .map(str::to_owned),
            );
        }
        Err(_) => {
            out.push(B64.encode(content));
            out.push(hex::encode(content));
            let head = &content[..content.len().min(24)];
            out.push(format!("{head:?}").trim_end_matches(']').to_owned());
        }
    }
    out
}

/// Runs [`assert_clean`] over the strings `sensitive` yields when dropped (unless the test is
/// already failing): a field of a suite's environment, so every test of the suite scans.
pub struct ScanOnDrop(Box<dyn Fn() -> Vec<String> + Send + Sync>);

impl ScanOnDrop {
    /// Installs the capture and arms the scan.
    pub fn new(sensitive: impl Fn() -> Vec<String> + Send + Sync + 'static) -> Self {
        install();
        Self(Box::new(sensitive))
    }
}

impl Drop for ScanOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_clean(&(self.0)());
        }
    }
}
