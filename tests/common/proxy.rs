//! A recording forward proxy on 127.0.0.1:0: `CONNECT host:port` is tunnelled to the fake HTTPS
//! server whatever the host (so real Azure names reach the fake without DNS), absolute-form
//! plain-HTTP requests are forwarded to the fake HTTP server.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// One request the proxy saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRecord {
    /// `CONNECT`, `GET`, ...
    pub method: String,
    /// `host:port` for CONNECT, the absolute URI otherwise.
    pub target: String,
    /// Host name (no port), lower case.
    pub host: String,
}

#[derive(Default)]
struct ProxyState {
    log: Mutex<Vec<ProxyRecord>>,
    /// Set to stop recording (load generation).
    log_disabled: AtomicBool,
    /// Hosts answered with 502 as a real proxy does when the name does not resolve.
    unresolvable: Mutex<HashSet<String>>,
}

/// The proxy.
pub struct FakeProxy {
    /// Listening address.
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
}

impl FakeProxy {
    /// Starts the proxy; panics (fails the test) when it cannot bind.
    pub async fn start(https_target: SocketAddr, http_target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { proxy_request(req, st, https_target, http_target).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything the proxy saw, in order.
    pub fn records(&self) -> Vec<ProxyRecord> {
        self.state.log.lock().expect("proxy log").clone()
    }

    /// Host names (lower case, no port) the proxy was asked to reach.
    pub fn hosts(&self) -> Vec<String> {
        self.records().into_iter().map(|r| r.host).collect()
    }

    /// Clears the log.
    pub fn clear_log(&self) {
        self.state.log.lock().expect("proxy log").clear();
    }

    /// Turns recording on (the default) or off.
    pub fn set_log(&self, enabled: bool) {
        self.state.log_disabled.store(!enabled, Ordering::Relaxed);
    }

    /// Makes the proxy answer 502 for `host`, as for a name that does not resolve.
    pub fn make_unresolvable(&self, host: &str) {
        self.state
            .unresolvable
            .lock()
            .expect("proxy state")
            .insert(host.to_ascii_lowercase());
    }
}

fn host_of(target: &str) -> String {
    let t = target.to_ascii_lowercase();
    let no_scheme = t.split_once("://").map_or(t.as_str(), |(_, r)| r);
    let authority = no_scheme.split('/').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned()
}

fn simple(status: u16) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .expect("proxy response")
}

async fn proxy_request(
    req: hyper::Request<Incoming>,
    st: Arc<ProxyState>,
    https_target: SocketAddr,
    http_target: SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let target = if req.method() == hyper::Method::CONNECT {
        req.uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default()
    } else {
        req.uri().to_string()
    };
    let host = host_of(&target);
    if !st.log_disabled.load(Ordering::Relaxed) {
        st.log.lock().expect("proxy log").push(ProxyRecord {
            method: req.method().to_string(),
            target: target.clone(),
            host: host.clone(),
        });
    }
    if st.unresolvable.lock().expect("proxy state").contains(&host) {
        return Ok(simple(502));
    }

    if req.method() == hyper::Method::CONNECT {
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(https_target).await else {
                return;
            };
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        return Ok(simple(200));
    }

    // Absolute-form plain HTTP: forward to the HTTP fake, keeping Host.
    let Ok(stream) = TcpStream::connect(http_target).await else {
        return Ok(simple(502));
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    if !parts.headers.contains_key(hyper::header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = a.as_str().parse()
    {
        parts.headers.insert(hyper::header::HOST, v);
    }
    parts.headers.remove("proxy-connection");
    parts.headers.remove("proxy-authorization");
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    parts.uri = pq.parse().expect("origin-form uri");
    let upstream = hyper::Request::from_parts(parts, Full::new(body));
    let resp = sender.send_request(upstream).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}
