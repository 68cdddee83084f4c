//! Fake Azure: one HTTPS server and one plain-HTTP server on 127.0.0.1:0 that route by Host header
//! to handlers (fake Key Vault, and whatever other services a test registers), a forward proxy in
//! front of both, and a request log for wire-shape assertions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::fake_keyvault::FakeKeyVault;
use super::pki::TestPki;
use super::proxy::FakeProxy;

/// A request as a handler sees it (including the Authorization value, for access control).
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Host header without port, lower case.
    pub host: String,
    /// Host header as sent (may include a port).
    pub host_header: String,
    /// Path (percent-encoded as sent).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// All headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// True when received by the HTTPS server.
    pub tls: bool,
}

impl Request {
    /// First header value by (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The bearer token, if an `Authorization: Bearer` header was sent.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
    }

    /// Value of a query parameter (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }

    /// Form body parameters (`application/x-www-form-urlencoded`), decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// A request as recorded in the log: the Authorization value is replaced by its scheme.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Host without port.
    pub host: String,
    /// Path.
    pub path: String,
    /// Query.
    pub query: Option<String>,
    /// Headers; `authorization` is `"Bearer <redacted>"` (scheme kept).
    pub headers: Vec<(String, String)>,
    /// Body (form bodies of token requests).
    pub body: Vec<u8>,
    /// HTTPS or plain.
    pub tls: bool,
}

impl RecordedRequest {
    /// First header value by (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct FakeResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Sleep before answering.
    pub delay: Option<Duration>,
    /// Close the connection without answering (connection reset from the client's view).
    pub reset: bool,
    /// Answer only once every party of this barrier has arrived (at most [`HOLD_LIMIT`]): makes
    /// requests overlap for certain instead of by timing.
    pub hold: Option<Arc<tokio::sync::Barrier>>,
}

/// How long a held answer waits for the other parties of its barrier before answering
/// 400 `fake: requests did not overlap` (not retried: fails the test loudly instead of testing
/// nothing).
pub const HOLD_LIMIT: Duration = Duration::from_secs(10);

impl FakeResponse {
    /// A JSON response.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.into(),
            delay: None,
            reset: false,
            hold: None,
        }
    }

    /// An empty response.
    pub fn status(status: u16) -> Self {
        Self::json(status, Vec::new())
    }

    /// Drops the connection without an answer.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::status(0)
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Holds the answer until all parties of `barrier` have arrived.
    pub fn with_hold(mut self, barrier: Arc<tokio::sync::Barrier>) -> Self {
        self.hold = Some(barrier);
        self
    }

    /// Delays the answer.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sends the headers (with the full `content-length`) and only the first `n` body bytes,
    /// then closes the connection: a connection reset mid-body from the client's view.
    pub fn with_reset_after(self, n: usize) -> Self {
        self.with_header(RESET_AFTER_HEADER, &n.to_string())
    }
}

/// Internal marker of [`FakeResponse::with_reset_after`]; never sent on the wire.
const RESET_AFTER_HEADER: &str = "x-fake-reset-after-bytes";

/// A route handler.
pub type Handler = Arc<dyn Fn(&Request) -> FakeResponse + Send + Sync>;

#[derive(Default)]
struct Routes {
    /// Keys: `host:port`, `host`, or `*.suffix` (lower case).
    map: RwLock<HashMap<String, Handler>>,
    log: Mutex<Vec<RecordedRequest>>,
    /// Set to stop recording (load generation: the log would grow without bound).
    log_disabled: AtomicBool,
}

impl Routes {
    fn find(&self, host_header: &str) -> Option<Handler> {
        let map = self.map.read().ok()?;
        let full = host_header.to_ascii_lowercase();
        if let Some(h) = map.get(&full) {
            return Some(h.clone());
        }
        let host = strip_port(&full);
        if let Some(h) = map.get(host) {
            return Some(h.clone());
        }
        let mut rest = host;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(h) = map.get(&format!("*.{parent}")) {
                return Some(h.clone());
            }
            rest = parent;
        }
        None
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// The fake Azure endpoints plus the proxy that reaches them.
pub struct FakeAzure {
    /// Test PKI (CA file for `--ca-bundle`).
    pub pki: TestPki,
    /// HTTPS server address (all TLS hosts).
    pub https_addr: SocketAddr,
    /// Plain-HTTP server address (IMDS, NMI, ...).
    pub http_addr: SocketAddr,
    /// Forward proxy (CONNECT → HTTPS fake, absolute-form → HTTP fake).
    pub proxy: FakeProxy,
    /// The fake Key Vault, routed for `*.vault.azure.net` and the other clouds' suffixes.
    pub keyvault: FakeKeyVault,
    routes: Arc<Routes>,
}

impl FakeAzure {
    /// Starts the servers, the proxy and a fake Key Vault. Panics (fails the test) when a listener
    /// cannot be bound.
    pub async fn start() -> Self {
        Self::start_with_hosts(&[]).await
    }

    /// As [`FakeAzure::start`], with extra host names in the server certificate.
    pub async fn start_with_hosts(extra_hosts: &[&str]) -> Self {
        let pki = TestPki::new(extra_hosts);
        let routes = Arc::new(Routes::default());

        let https = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind https fake");
        let https_addr = https.local_addr().expect("https addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
        let r = routes.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = https.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let r = r.clone();
                tokio::spawn(async move {
                    // A failed handshake is what the CA-less client test expects; not an error here.
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve_conn(TokioIo::new(tls), r, true).await;
                    }
                });
            }
        });

        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http fake");
        let http_addr = http.local_addr().expect("http addr");
        let r = routes.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = http.accept().await else {
                    continue;
                };
                let r = r.clone();
                tokio::spawn(async move { serve_conn(TokioIo::new(tcp), r, false).await });
            }
        });

        let proxy = FakeProxy::start(https_addr, http_addr).await;
        let keyvault = FakeKeyVault::new();
        let fake = Self {
            pki,
            https_addr,
            http_addr,
            proxy,
            keyvault,
            routes,
        };
        for suffix in [
            "*.vault.azure.net",
            "*.vault.usgovcloudapi.net",
            "*.vault.azure.cn",
            "*.vault.microsoftazure.de",
        ] {
            fake.route(suffix, fake.keyvault.handler());
        }
        fake
    }

    /// Registers (or replaces) the handler for `host` (`host`, `host:port` or `*.suffix`).
    pub fn route(&self, host: &str, handler: Handler) {
        self.routes
            .map
            .write()
            .expect("routes lock")
            .insert(host.to_ascii_lowercase(), handler);
    }

    /// Registers a closure as handler.
    pub fn route_fn(
        &self,
        host: &str,
        f: impl Fn(&Request) -> FakeResponse + Send + Sync + 'static,
    ) {
        self.route(host, Arc::new(f));
    }

    /// Every request the fakes received, in order (Authorization values redacted).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.routes.log.lock().expect("log lock").clone()
    }

    /// Requests for one host.
    pub fn requests_to(&self, host: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.host.eq_ignore_ascii_case(host))
            .collect()
    }

    /// Clears the request logs of the fakes and the proxy.
    pub fn clear_log(&self) {
        self.routes.log.lock().expect("log lock").clear();
        self.proxy.clear_log();
    }

    /// Turns the request logs of the fakes and the proxy on (the default) or off;
    /// a load generator turns them off so they do not grow without bound.
    pub fn set_request_log(&self, enabled: bool) {
        self.routes.log_disabled.store(!enabled, Ordering::Relaxed);
        self.proxy.set_log(enabled);
    }

    /// `http://127.0.0.1:<port>` of the proxy (value for `HTTPS_PROXY`/`HTTP_PROXY`).
    pub fn proxy_url(&self) -> String {
        self.proxy.url()
    }
}

async fn serve_conn<I>(io: I, routes: Arc<Routes>, tls: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let routes = routes.clone();
        async move { handle(req, routes, tls).await }
    });
    // Errors here are connection resets the tests provoke on purpose.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

#[derive(Debug)]
struct ResetConnection;

type ChunkStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Frame<Bytes>, ResetConnection>> + Send>>;
type FakeBody = Either<Full<Bytes>, StreamBody<ChunkStream>>;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted connection reset")
    }
}

impl std::error::Error for ResetConnection {}

async fn handle(
    req: hyper::Request<Incoming>,
    routes: Arc<Routes>,
    tls: bool,
) -> Result<hyper::Response<FakeBody>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let host_header = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = Request {
        method: parts.method.to_string(),
        host: strip_port(&host_header.to_ascii_lowercase()).to_owned(),
        host_header: host_header.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body,
        tls,
    };
    if !routes.log_disabled.load(Ordering::Relaxed) {
        routes.log.lock().expect("log lock").push(RecordedRequest {
            method: request.method.clone(),
            host: request.host.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request
                .headers
                .iter()
                .map(|(n, v)| {
                    if n == "authorization" {
                        let scheme = v.split(' ').next().unwrap_or_default();
                        (n.clone(), format!("{scheme} <redacted>"))
                    } else {
                        (n.clone(), v.clone())
                    }
                })
                .collect(),
            body: request.body.clone(),
            tls,
        });
    }
    let resp = match routes.find(&host_header) {
        Some(h) => h(&request),
        None => FakeResponse::json(
            502,
            format!("{{\"error\":\"no fake route for host {host_header}\"}}"),
        ),
    };
    let mut resp = resp;
    if let Some(barrier) = resp.hold.take()
        && tokio::time::timeout(HOLD_LIMIT, barrier.wait())
            .await
            .is_err()
    {
        resp = FakeResponse::json(
            400,
            r#"{"error":{"code":"FakeHoldTimeout","message":"fake: requests did not overlap"}}"#,
        );
    }
    if let Some(d) = resp.delay {
        tokio::time::sleep(d).await;
    }
    if resp.reset {
        return Err(ResetConnection);
    }
    let reset_after = resp
        .headers
        .iter()
        .find(|(n, _)| n == RESET_AFTER_HEADER)
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut builder = hyper::Response::builder().status(resp.status);
    for (n, v) in resp.headers.iter().filter(|(n, _)| n != RESET_AFTER_HEADER) {
        builder = builder.header(n.as_str(), v.as_str());
    }
    let mut body = resp.body;
    let Some(n) = reset_after else {
        return Ok(builder
            .body(Either::Left(Full::new(Bytes::from(body))))
            .expect("fake response"));
    };
    // The full length is announced, `n` bytes are sent (and given time to leave), then the
    // body fails, which makes hyper drop the connection mid-body.
    builder = builder.header("content-length", body.len().to_string());
    body.truncate(n);
    let chunks = futures::stream::unfold(Some(Bytes::from(body)), |state| async move {
        match state {
            Some(head) => Some((Ok(Frame::data(head)), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Err(ResetConnection), None))
            }
        }
    });
    let chunks: ChunkStream = Box::pin(chunks);
    Ok(builder
        .body(Either::Right(StreamBody::new(chunks)))
        .expect("fake response"))
}
