//! Minimal raw HTTP/2 client for transport tests: hand-built HPACK so that any
//! `:authority` (or none) can be sent, which `http::Uri`-based clients cannot do.
#![allow(dead_code)]

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The client connection preface.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const CONTINUATION: u8 = 0x9;
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY: u8 = 0x20;

/// How the request carries `:authority`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Authority<'a> {
    /// No `:authority` at all.
    Absent,
    /// Literal without indexing.
    Literal(&'a [u8]),
    /// Literal with incremental indexing: becomes dynamic entry 62 (the
    /// request encoder indexes nothing else).
    Indexed(&'a [u8]),
    /// An indexed reference into the client's table.
    TableRef(usize),
}

/// One HTTP/2 frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

/// Builds a frame.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an N-bit prefix.
pub(crate) fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u8, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// HPACK string literal without Huffman coding.
pub(crate) fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// The header block of a gRPC request to `path`.
pub(crate) fn request_block(path: &str, authority: Authority<'_>) -> Vec<u8> {
    // :method POST, :scheme http (static 3 and 6).
    let mut b = vec![0x83, 0x86];
    hpack_int(&mut b, 0x00, 4, 4);
    hpack_str(&mut b, path.as_bytes());
    match authority {
        Authority::Absent => {}
        Authority::Literal(v) => {
            hpack_int(&mut b, 0x00, 4, 1);
            hpack_str(&mut b, v);
        }
        Authority::Indexed(v) => {
            hpack_int(&mut b, 0x40, 6, 1);
            hpack_str(&mut b, v);
        }
        Authority::TableRef(i) => hpack_int(&mut b, 0x80, 7, i),
    }
    hpack_int(&mut b, 0x00, 4, 31);
    hpack_str(&mut b, b"application/grpc");
    b.push(0x00);
    hpack_str(&mut b, b"te");
    hpack_str(&mut b, b"trailers");
    b
}

/// A gRPC length-prefixed message.
pub(crate) fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What came back for one stream.
#[derive(Debug, Default)]
pub(crate) struct CallOutcome {
    /// Response headers (the first header block).
    pub(crate) headers: Vec<(String, String)>,
    /// Concatenated DATA payloads.
    pub(crate) data: Vec<u8>,
    /// Trailers (the second header block), empty for a trailers-only response.
    pub(crate) trailers: Vec<(String, String)>,
    /// RST_STREAM error code, when the stream was reset.
    pub(crate) reset: Option<u32>,
    /// Whether a GOAWAY arrived while waiting.
    pub(crate) goaway: bool,
}

impl CallOutcome {
    fn find(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .chain(&self.headers)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `grpc-status` trailer (or trailers-only header).
    pub(crate) fn grpc_status(&self) -> Option<i32> {
        self.find("grpc-status").and_then(|v| v.parse().ok())
    }

    /// The percent-decoded `grpc-message`.
    pub(crate) fn grpc_message(&self) -> String {
        self.find("grpc-message")
            .map(percent_decode)
            .unwrap_or_default()
    }

    /// The single response message without its 5-byte prefix.
    pub(crate) fn message(&self) -> Option<&[u8]> {
        let len = u32::from_be_bytes(self.data.get(1..5)?.try_into().ok()?) as usize;
        self.data.get(5..5 + len)
    }
}

/// One raw HTTP/2 client connection.
pub(crate) struct RawConn {
    io: UnixStream,
    buf: Vec<u8>,
    /// Tracks the server's HPACK encoder (h2 does index response headers).
    decoder: loona_hpack::Decoder<'static>,
    next_stream: u32,
    pub(crate) goaway: bool,
}

impl RawConn {
    /// Connects and sends the preface and an empty SETTINGS frame.
    pub(crate) async fn connect(path: &Path) -> io::Result<Self> {
        let io = UnixStream::connect(path).await?;
        let mut conn = Self::from_stream(io);
        let mut hello = PREFACE.to_vec();
        hello.extend_from_slice(&frame(SETTINGS, 0, 0, &[]));
        conn.write_raw(&hello).await?;
        Ok(conn)
    }

    /// Wraps a connected stream without sending anything.
    pub(crate) fn from_stream(io: UnixStream) -> Self {
        Self {
            io,
            buf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            next_stream: 1,
            goaway: false,
        }
    }

    /// Writes bytes as they are.
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// Reads the next frame; `None` at end of stream.
    pub(crate) async fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if self.buf.len() >= 9 {
                let len = usize::from(self.buf[0]) << 16
                    | usize::from(self.buf[1]) << 8
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let bytes: Vec<u8> = self.buf.drain(..9 + len).collect();
                    return Ok(Some(Frame {
                        kind: bytes[3],
                        flags: bytes[4],
                        stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]])
                            & 0x7fff_ffff,
                        payload: bytes[9..].to_vec(),
                    }));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends the request HEADERS (without END_STREAM) and returns the stream id.
    pub(crate) async fn start_call(
        &mut self,
        path: &str,
        authority: Authority<'_>,
    ) -> io::Result<u32> {
        let stream = self.next_stream;
        self.next_stream += 2;
        let block = request_block(path, authority);
        self.write_raw(&frame(HEADERS, END_HEADERS, stream, &block))
            .await?;
        Ok(stream)
    }

    /// Sends one gRPC message and ends the request stream.
    pub(crate) async fn send_message(&mut self, stream: u32, msg: &[u8]) -> io::Result<()> {
        self.write_raw(&frame(DATA, END_STREAM, stream, &grpc_frame(msg)))
            .await
    }

    /// Reads until `stream` ends (END_STREAM or RST_STREAM), answering
    /// SETTINGS and PING on the way. Fails after 5 s or on end of connection.
    pub(crate) async fn finish_call(&mut self, stream: u32) -> io::Result<CallOutcome> {
        tokio::time::timeout(Duration::from_secs(5), self.finish_call_inner(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 5 s"))?
    }

    async fn finish_call_inner(&mut self, stream: u32) -> io::Result<CallOutcome> {
        let mut out = CallOutcome::default();
        let mut seen_headers = false;
        loop {
            let Some(f) = self.read_frame().await? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed before stream {stream} ended: {out:?}"),
                ));
            };
            match f.kind {
                SETTINGS if f.flags & ACK == 0 => {
                    self.write_raw(&frame(SETTINGS, ACK, 0, &[])).await?;
                }
                PING if f.flags & ACK == 0 => {
                    self.write_raw(&frame(PING, ACK, 0, &f.payload)).await?;
                }
                GOAWAY => {
                    self.goaway = true;
                    out.goaway = true;
                }
                HEADERS => {
                    let headers = self.read_header_block(&f).await?;
                    if f.stream == stream {
                        if seen_headers {
                            out.trailers = headers;
                        } else {
                            out.headers = headers;
                            seen_headers = true;
                        }
                        if f.flags & END_STREAM != 0 {
                            return Ok(out);
                        }
                    }
                }
                DATA if f.stream == stream => {
                    out.data.extend_from_slice(&f.payload);
                    if f.flags & END_STREAM != 0 {
                        return Ok(out);
                    }
                }
                RST_STREAM if f.stream == stream => {
                    out.reset = Some(u32::from_be_bytes(
                        f.payload[..4].try_into().map_err(io::Error::other)?,
                    ));
                    return Ok(out);
                }
                _ => {}
            }
        }
    }

    /// Collects and decodes the header block starting with HEADERS frame `f`.
    async fn read_header_block(&mut self, f: &Frame) -> io::Result<Vec<(String, String)>> {
        let mut p = &f.payload[..];
        let mut pad = 0;
        if f.flags & PADDED != 0 {
            pad = usize::from(p[0]);
            p = &p[1..];
        }
        if f.flags & PRIORITY != 0 {
            p = &p[5..];
        }
        let mut block = p[..p.len() - pad].to_vec();
        let mut end = f.flags & END_HEADERS != 0;
        while !end {
            let c = self
                .read_frame()
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "in header block"))?;
            assert_eq!(c.kind, CONTINUATION);
            block.extend_from_slice(&c.payload);
            end = c.flags & END_HEADERS != 0;
        }
        let list = self
            .decoder
            .decode(&block)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        Ok(list
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect())
    }

    /// A complete unary call.
    pub(crate) async fn call(
        &mut self,
        path: &str,
        authority: Authority<'_>,
        msg: &[u8],
    ) -> io::Result<CallOutcome> {
        let stream = self.start_call(path, authority).await?;
        self.send_message(stream, msg).await?;
        self.finish_call(stream).await
    }

    /// Reads connection-level frames (answering SETTINGS and PING, noting GOAWAY) until `done`
    /// says stop; fails after 5 s, at end of connection, or on a stream frame.
    async fn until(&mut self, mut done: impl FnMut(&Frame) -> bool) -> io::Result<()> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let Some(f) = self.read_frame().await? else {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                };
                match f.kind {
                    SETTINGS if f.flags & ACK == 0 => {
                        self.write_raw(&frame(SETTINGS, ACK, 0, &[])).await?;
                    }
                    PING if f.flags & ACK == 0 => {
                        self.write_raw(&frame(PING, ACK, 0, &f.payload)).await?;
                    }
                    GOAWAY => self.goaway = true,
                    _ if f.stream != 0 => {
                        return Err(io::Error::other(format!(
                            "unexpected frame {} on stream {}",
                            f.kind, f.stream
                        )));
                    }
                    _ => {}
                }
                if done(&f) {
                    return Ok(());
                }
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no such frame within 5 s"))?
    }

    /// Sends a PING and waits for its ACK: the server has processed every frame sent before
    /// (e.g. a stream's HEADERS) when this returns.
    pub(crate) async fn sync(&mut self) -> io::Result<()> {
        let payload = *b"syncsync";
        self.write_raw(&frame(PING, 0, 0, &payload)).await?;
        self.until(|f| f.kind == PING && f.flags & ACK != 0 && f.payload == payload)
            .await
    }

    /// Waits for the server's GOAWAY (answering SETTINGS and PING meanwhile).
    pub(crate) async fn wait_goaway(&mut self) -> io::Result<()> {
        if self.goaway {
            return Ok(());
        }
        self.until(|f| f.kind == GOAWAY).await
    }

    /// Reads and discards until the server closes the connection; `false`
    /// if it is still open after `timeout`.
    pub(crate) async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let io = &mut self.io;
        tokio::time::timeout(timeout, async move {
            let mut chunk = [0u8; 4096];
            loop {
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}
