//! Client→server HTTP/2 frame rewriting that makes any `:authority` acceptable to h2 (protocol.md §9).
//!
//! h2 resets a stream whose `:authority` is not a URI authority before any
//! tonic code runs, and pre-1.6 drivers send the socket path there. This
//! adapter sits between the accepted socket and hyper: it decodes every client
//! header block with an HPACK decoder that mirrors the client's dynamic table,
//! replaces an unparsable `:authority` with `localhost`, and re-encodes the
//! block with literals that never touch the server's dynamic table (so only
//! one HPACK state, the client's, has to be tracked). Everything else passes
//! through byte for byte.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Every peer must accept frames of this size (SETTINGS_MAX_FRAME_SIZE minimum).
const MAX_OUT_FRAME_PAYLOAD: usize = 16_384;
/// Bound on one compressed header block and on its decoded size; h2 would
/// refuse far smaller lists, so nothing legitimate comes near it.
const MAX_BLOCK: usize = 1 << 20;
/// Pad length octet + 255 padding octets + priority fields.
const MAX_FRAME_OVERHEAD: usize = 1 + 255 + 5;
/// h2's SETTINGS_HEADER_TABLE_SIZE (tonic never changes it), so the client's
/// encoder may use up to this much.
const HPACK_TABLE_SIZE: usize = 4096;
const READ_CHUNK: usize = 16 * 1024;
const FALLBACK_AUTHORITY: &[u8] = b"localhost";

/// Header names of the HPACK static table (RFC 7541 Appendix A), in index order.
const STATIC_NAMES: [&[u8]; 61] = [
    b":authority",
    b":method",
    b":method",
    b":path",
    b":path",
    b":scheme",
    b":scheme",
    b":status",
    b":status",
    b":status",
    b":status",
    b":status",
    b":status",
    b":status",
    b"accept-charset",
    b"accept-encoding",
    b"accept-language",
    b"accept-ranges",
    b"accept",
    b"access-control-allow-origin",
    b"age",
    b"allow",
    b"authorization",
    b"cache-control",
    b"content-disposition",
    b"content-encoding",
    b"content-language",
    b"content-length",
    b"content-location",
    b"content-range",
    b"content-type",
    b"cookie",
    b"date",
    b"etag",
    b"expect",
    b"expires",
    b"from",
    b"host",
    b"if-match",
    b"if-modified-since",
    b"if-none-match",
    b"if-range",
    b"if-unmodified-since",
    b"last-modified",
    b"link",
    b"location",
    b"max-forwards",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"range",
    b"referer",
    b"refresh",
    b"retry-after",
    b"server",
    b"set-cookie",
    b"strict-transport-security",
    b"transfer-encoding",
    b"user-agent",
    b"vary",
    b"via",
    b"www-authenticate",
];

/// Where the parser is in the client→server byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Inside the connection preface; `matched` bytes seen so far.
    Preface { matched: usize },
    /// At a frame boundary.
    Frame,
    /// Streaming the payload of a frame that is not rewritten.
    Payload { remaining: usize },
    /// Not HTTP/2 with prior knowledge: h2 reports its own error.
    Passthrough,
    /// A fatal error was reported; the connection is finished.
    Failed,
}

/// A header block being collected from HEADERS + CONTINUATION frames.
struct PendingBlock {
    stream_id: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// Wraps an accepted connection so that h2 accepts any `:authority`.
///
/// Reads (client→server) are rewritten as described in the module docs;
/// writes pass through untouched.
pub struct AuthorityTolerant<IO> {
    inner: IO,
    state: State,
    /// Raw client bytes not yet processed.
    input: BytesMut,
    /// Processed bytes not yet handed to the reader.
    output: BytesMut,
    pending: Option<PendingBlock>,
    decoder: loona_hpack::Decoder<'static>,
    /// Reported after `output` has been drained.
    error: Option<io::Error>,
    eof: bool,
}

impl<IO> fmt::Debug for AuthorityTolerant<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityTolerant")
            .field("state", &self.state)
            .field("buffered_in", &self.input.len())
            .field("buffered_out", &self.output.len())
            .finish_non_exhaustive()
    }
}

impl<IO> AuthorityTolerant<IO> {
    /// Wraps `inner`.
    pub fn new(inner: IO) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HPACK_TABLE_SIZE);
        decoder.set_max_table_size(HPACK_TABLE_SIZE);
        Self {
            inner,
            state: State::Preface { matched: 0 },
            input: BytesMut::new(),
            output: BytesMut::new(),
            pending: None,
            decoder,
            error: None,
            eof: false,
        }
    }

    /// Moves as much of `input` to `output` as can be decided now.
    fn process(&mut self) {
        if let Err(e) = self.process_inner() {
            self.state = State::Failed;
            self.input.clear();
            self.pending = None;
            self.error = Some(e);
        }
    }

    fn process_inner(&mut self) -> io::Result<()> {
        loop {
            match self.state {
                State::Failed => return Ok(()),
                State::Passthrough => {
                    self.output.extend_from_slice(&self.input);
                    self.input.clear();
                    return Ok(());
                }
                State::Preface { matched } => {
                    if self.input.is_empty() {
                        return Ok(());
                    }
                    let n = self.input.len().min(PREFACE.len() - matched);
                    if self.input[..n] == PREFACE[matched..matched + n] {
                        self.move_to_output(n);
                        let matched = matched + n;
                        self.state = if matched == PREFACE.len() {
                            State::Frame
                        } else {
                            State::Preface { matched }
                        };
                    } else {
                        tracing::debug!(
                            "connection does not start with the HTTP/2 preface; not rewriting it"
                        );
                        self.state = State::Passthrough;
                    }
                }
                State::Payload { remaining } => {
                    if self.input.is_empty() {
                        return Ok(());
                    }
                    let n = self.input.len().min(remaining);
                    self.move_to_output(n);
                    self.state = if remaining == n {
                        State::Frame
                    } else {
                        State::Payload {
                            remaining: remaining - n,
                        }
                    };
                }
                State::Frame => {
                    if !self.process_frame()? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Handles the frame at the start of `input`; `false` when more bytes are needed.
    fn process_frame(&mut self) -> io::Result<bool> {
        let Some(head) = self.input.get(..FRAME_HEADER_LEN) else {
            return Ok(false);
        };
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let kind = head[3];
        let flags = head[4];
        let stream_id = [head[5], head[6], head[7], head[8]];

        match &self.pending {
            Some(p) if kind != TYPE_CONTINUATION || p.stream_id != stream_id => {
                return Err(invalid("HTTP/2 header block interrupted by another frame"));
            }
            None if kind != TYPE_HEADERS => {
                self.move_to_output(FRAME_HEADER_LEN);
                if len > 0 {
                    self.state = State::Payload { remaining: len };
                }
                return Ok(true);
            }
            _ => {}
        }

        let collected = self.pending.as_ref().map_or(0, |p| p.fragment.len());
        if collected + len > MAX_BLOCK + MAX_FRAME_OVERHEAD {
            return Err(invalid("HTTP/2 header block larger than 1 MiB"));
        }
        let total = FRAME_HEADER_LEN + len;
        if self.input.len() < total {
            self.input.reserve(total - self.input.len());
            return Ok(false);
        }
        let frame = self.input.split_to(total);
        let payload = &frame[FRAME_HEADER_LEN..];

        if kind == TYPE_HEADERS {
            let (priority, fragment) = strip_headers_payload(flags, payload)?;
            self.pending = Some(PendingBlock {
                stream_id,
                end_stream: flags & FLAG_END_STREAM != 0,
                priority,
                fragment: fragment.to_vec(),
            });
        } else if let Some(p) = &mut self.pending {
            p.fragment.extend_from_slice(payload);
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.fragment.len() > MAX_BLOCK)
        {
            return Err(invalid("HTTP/2 header block larger than 1 MiB"));
        }
        if flags & FLAG_END_HEADERS != 0
            && let Some(block) = self.pending.take()
        {
            let encoded = rewrite_block(&mut self.decoder, &block.fragment)?;
            write_header_frames(&mut self.output, &block, &encoded);
        }
        Ok(true)
    }

    fn move_to_output(&mut self, n: usize) {
        self.output.extend_from_slice(&self.input[..n]);
        self.input.advance(n);
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Removes padding and the priority fields from a HEADERS payload.
fn strip_headers_payload(flags: u8, payload: &[u8]) -> io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut pad = 0;
    if flags & FLAG_PADDED != 0 {
        let (&n, tail) = rest
            .split_first()
            .ok_or_else(|| invalid("padded HTTP/2 HEADERS frame without pad length"))?;
        pad = usize::from(n);
        rest = tail;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let (fields, tail) = rest
            .split_first_chunk::<5>()
            .ok_or_else(|| invalid("HTTP/2 HEADERS frame too short for its priority fields"))?;
        priority = Some(*fields);
        rest = tail;
    }
    if pad > rest.len() {
        return Err(invalid("HTTP/2 HEADERS padding longer than the frame"));
    }
    Ok((priority, &rest[..rest.len() - pad]))
}

/// Whether h2 would accept `value` as `:authority`.
fn is_valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// Decodes `block` against the client's table and re-encodes it without indexing.
fn rewrite_block(decoder: &mut loona_hpack::Decoder<'static>, block: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoded = Vec::with_capacity(block.len() + 64);
    let mut decoded_size = 0usize;
    // The decoder cannot be stopped from the callback, so a block that expands
    // past the bound (repeated references to a large table entry) is only
    // measured, not copied, and rejected afterwards.
    let mut too_large = false;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoder.decode_with_cb(block, |name, value| {
            decoded_size = decoded_size.saturating_add(name.len() + value.len() + 32);
            if decoded_size > MAX_BLOCK {
                too_large = true;
                return;
            }
            let value: &[u8] = if &name[..] == b":authority" && !is_valid_authority(&value) {
                tracing::debug!(
                    authority = %value.escape_ascii(),
                    "replacing an :authority that is not a URI authority with localhost"
                );
                FALLBACK_AUTHORITY
            } else {
                &value
            };
            encode_literal(&mut encoded, &name, value);
        })
    }));
    match result {
        Err(_) => Err(invalid("HPACK decoder failed on a client header block")),
        Ok(Err(e)) => Err(invalid(format!("invalid HPACK header block: {e}"))),
        Ok(Ok(())) if too_large => Err(invalid("decoded HTTP/2 header list larger than 1 MiB")),
        Ok(Ok(())) => Ok(encoded),
    }
}

/// Appends an HPACK integer with a `prefix`-bit prefix (RFC 7541 §5.1).
fn encode_integer(out: &mut Vec<u8>, first_bits: u8, prefix: u8, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first_bits | value as u8);
        return;
    }
    out.push(first_bits | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// "Literal header field without indexing" (RFC 7541 §6.2.2): leaves the
/// server's dynamic table untouched.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    match STATIC_NAMES.iter().position(|n| *n == name) {
        Some(i) => encode_integer(out, 0x00, 4, i + 1),
        None => {
            out.push(0x00);
            encode_string(out, name);
        }
    }
    encode_string(out, value);
}

fn put_frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: [u8; 4]) {
    // `len` never exceeds MAX_OUT_FRAME_PAYLOAD, so three octets hold it.
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream_id);
}

/// Emits the re-encoded block as one HEADERS frame plus CONTINUATION frames.
fn write_header_frames(out: &mut BytesMut, block: &PendingBlock, encoded: &[u8]) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first_len = encoded.len().min(MAX_OUT_FRAME_PAYLOAD - priority_len);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = 0;
    if block.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    out.reserve(encoded.len() + FRAME_HEADER_LEN * (2 + encoded.len() / MAX_OUT_FRAME_PAYLOAD));
    put_frame_header(
        out,
        first_len + priority_len,
        TYPE_HEADERS,
        flags,
        block.stream_id,
    );
    if let Some(p) = &block.priority {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_OUT_FRAME_PAYLOAD));
        rest = tail;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        put_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityTolerant<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.error.take() {
                return Poll::Ready(Err(e));
            }
            match this.state {
                State::Failed => {
                    return Poll::Ready(Err(invalid("HTTP/2 connection already failed")));
                }
                State::Passthrough if this.input.is_empty() => {
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                _ => {}
            }
            if this.eof {
                // A truncated frame or header block is dropped: h2 sees the
                // connection end, which is what it is.
                return Poll::Ready(Ok(()));
            }
            this.input.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.input) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => this.process(),
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityTolerant<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BAD_PATH: &[u8] = b"/var/run/secrets-store-csi-providers/rust-azure.sock";

    type Headers = Vec<(Vec<u8>, Vec<u8>)>;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn hdrs(list: &[(&str, &str)]) -> Headers {
        list.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn request_headers(authority: Option<&[u8]>) -> Headers {
        let mut h = hdrs(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/v1alpha1.CSIDriverProvider/Version"),
        ]);
        if let Some(a) = authority {
            h.push((b":authority".to_vec(), a.to_vec()));
        }
        h.extend(hdrs(&[
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]));
        h
    }

    fn encode(enc: &mut loona_hpack::Encoder<'static>, h: &Headers) -> Vec<u8> {
        enc.encode(h.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    fn with_preface(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut v = PREFACE.to_vec();
        for f in frames {
            v.extend_from_slice(f);
        }
        v
    }

    async fn run(input: &[u8]) -> io::Result<Vec<u8>> {
        let mut a = AuthorityTolerant::new(input);
        let mut out = Vec::new();
        a.read_to_end(&mut out).await?;
        Ok(out)
    }

    /// Hands out one byte per read and returns Pending every other poll.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        ready: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.ready {
                self.ready = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.ready = false;
            if let Some(&b) = self.data.get(self.pos) {
                buf.put_slice(&[b]);
                self.pos += 1;
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Reads through the adapter with a 7-byte caller buffer.
    async fn run_trickle(input: &[u8]) -> io::Result<Vec<u8>> {
        let mut a = AuthorityTolerant::new(Trickle {
            data: input.to_vec(),
            pos: 0,
            ready: false,
        });
        let mut out = Vec::new();
        let mut chunk = [0u8; 7];
        loop {
            let n = a.read(&mut chunk).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
        }
    }

    #[derive(Debug)]
    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    fn parse_frames(bytes: &[u8]) -> Vec<Frame> {
        assert_eq!(&bytes[..24], PREFACE, "preface must pass through");
        let mut rest = &bytes[24..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            frames.push(Frame {
                kind: rest[3],
                flags: rest[4],
                stream: u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]),
                payload: rest[9..9 + len].to_vec(),
            });
            rest = &rest[9 + len..];
        }
        frames
    }

    /// One rewritten header block: stream, HEADERS flags, priority, decoded headers.
    #[derive(Debug)]
    struct Block {
        stream: u32,
        flags: u8,
        priority: Option<Vec<u8>>,
        headers: Headers,
    }

    /// Reassembles output header blocks, checking the framing rules, and
    /// decodes each with a fresh decoder: the output must never depend on
    /// dynamic-table state.
    fn blocks(frames: &[Frame]) -> Vec<Block> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < frames.len() {
            let f = &frames[i];
            i += 1;
            if f.kind != TYPE_HEADERS {
                continue;
            }
            assert!(f.payload.len() <= MAX_OUT_FRAME_PAYLOAD);
            assert_eq!(f.flags & FLAG_PADDED, 0);
            let (priority, mut block) = if f.flags & FLAG_PRIORITY != 0 {
                (Some(f.payload[..5].to_vec()), f.payload[5..].to_vec())
            } else {
                (None, f.payload.clone())
            };
            let mut end = f.flags & FLAG_END_HEADERS != 0;
            while !end {
                let c = &frames[i];
                i += 1;
                assert_eq!(c.kind, TYPE_CONTINUATION);
                assert_eq!(c.stream, f.stream);
                assert!(c.payload.len() <= MAX_OUT_FRAME_PAYLOAD);
                block.extend_from_slice(&c.payload);
                end = c.flags & FLAG_END_HEADERS != 0;
            }
            let headers = loona_hpack::Decoder::new().decode(&block).unwrap();
            out.push(Block {
                stream: f.stream,
                flags: f.flags,
                priority,
                headers,
            });
        }
        out
    }

    fn with_authority(h: &Headers, value: &[u8]) -> Headers {
        h.iter()
            .map(|(n, v)| {
                if n == b":authority" {
                    (n.clone(), value.to_vec())
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect()
    }

    fn settings() -> Vec<u8> {
        frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0])
    }

    fn data(stream: u32, payload: &[u8], end: bool) -> Vec<u8> {
        frame(0x0, u8::from(end), stream, payload)
    }

    /// Two requests on one connection: the bad authority is indexed by the
    /// first block and referenced from the dynamic table by the second.
    fn two_request_connection() -> (Vec<u8>, Headers) {
        let h = request_headers(Some(BAD_PATH));
        let path = b"/v1alpha1.CSIDriverProvider/Version";
        let mut b1 = vec![0x83, 0x86, 0x04, path.len() as u8];
        b1.extend_from_slice(path);
        // :authority with incremental indexing (dynamic 62 after this line).
        b1.extend_from_slice(&[0x41, BAD_PATH.len() as u8]);
        b1.extend_from_slice(BAD_PATH);
        // content-type with incremental indexing.
        b1.extend_from_slice(&[0x5f, 16]);
        b1.extend_from_slice(b"application/grpc");
        // te (new name) with incremental indexing.
        b1.extend_from_slice(&[0x40, 2, b't', b'e', 8]);
        b1.extend_from_slice(b"trailers");
        // Same headers; te=62, content-type=63, :authority=64.
        let mut b2 = vec![0x83, 0x86, 0x04, path.len() as u8];
        b2.extend_from_slice(path);
        b2.extend_from_slice(&[0xc0, 0xbf, 0xbe]);
        let msg = [0u8, 0, 0, 0, 2, 0x0a, 0x00];
        let input = with_preface(&[
            settings(),
            frame(0x4, 0x1, 0, &[]),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &b1),
            data(1, &msg, true),
            frame(0x8, 0, 0, &[0, 0, 0x10, 0]),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &b2),
            data(3, &msg, true),
        ]);
        (input, h)
    }

    #[tokio::test]
    async fn rewrites_bad_authority_across_dynamic_table_references() {
        let (input, h) = two_request_connection();
        let out = run(&input).await.unwrap();
        let frames = parse_frames(&out);
        let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [0x4, 0x4, 0x1, 0x0, 0x8, 0x1, 0x0]);
        // Non-header frames are byte-identical.
        let original = parse_frames(&input);
        for (o, r) in original.iter().zip(&frames) {
            if o.kind != TYPE_HEADERS {
                assert_eq!(
                    (o.kind, o.flags, o.stream, &o.payload),
                    (r.kind, r.flags, r.stream, &r.payload)
                );
            }
        }
        let want = with_authority(&h, b"localhost");
        let b = blocks(&frames);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].stream, b[1].stream), (1, 3));
        assert_eq!(b[0].headers, want);
        assert_eq!(b[1].headers, want);
    }

    #[tokio::test]
    async fn byte_at_a_time_gives_the_same_output() {
        let (input, _) = two_request_connection();
        let whole = run(&input).await.unwrap();
        let trickled = run_trickle(&input).await.unwrap();
        assert_eq!(whole, trickled);
    }

    #[tokio::test]
    async fn authority_values() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
        let cases: &[Case<'_>] = &[
            (Some(b"localhost"), Some(b"localhost")),
            (Some(b"example.com:8080"), Some(b"example.com:8080")),
            (Some(b"[::1]:50051"), Some(b"[::1]:50051")),
            (None, None),
            (Some(b""), Some(b"localhost")),
            (Some(BAD_PATH), Some(b"localhost")),
            (
                Some(b"/etc/kubernetes/secrets-store-csi-providers/rust-azure.sock"),
                Some(b"localhost"),
            ),
            (
                Some(b"%2Fvar%2Frun%2Fsecrets-store-csi-providers%2Frust-azure.sock"),
                Some(b"localhost"),
            ),
            (
                Some(b"C:\\k\\secrets-store-csi-providers\\rust-azure.sock"),
                Some(b"localhost"),
            ),
            (Some(b"an arbitrary string with spaces"), Some(b"localhost")),
            (Some(&[0xff, 0x00, b'a']), Some(b"localhost")),
        ];
        for (sent, want) in cases {
            let mut enc = loona_hpack::Encoder::new();
            let h = request_headers(*sent);
            let input = with_preface(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS | FLAG_END_STREAM,
                1,
                &encode(&mut enc, &h),
            )]);
            let out = run(&input).await.unwrap();
            let b = blocks(&parse_frames(&out));
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].flags, FLAG_END_HEADERS | FLAG_END_STREAM);
            let expected = match want {
                Some(w) => with_authority(&h, w),
                None => h.clone(),
            };
            assert_eq!(b[0].headers, expected, "authority {sent:?}");
        }
    }

    #[tokio::test]
    async fn huffman_strings_and_rfc_vectors_across_blocks() {
        // RFC 7541 Appendix C.4: three requests with Huffman-coded literals and
        // dynamic-table references from one block to the next.
        let b1 = hex::decode("828684418cf1e3c2e5f23a6ba0ab90f4ff").unwrap();
        let b2 = hex::decode("828684be5886a8eb10649cbf").unwrap();
        let b3 = hex::decode("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf").unwrap();
        let input = with_preface(&[
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &b1),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &b2),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 5, &b3),
        ]);
        let out = run(&input).await.unwrap();
        let b = blocks(&parse_frames(&out));
        let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
        let mut want1 = hdrs(&base);
        want1.push((b":authority".to_vec(), b"www.example.com".to_vec()));
        let mut want2 = want1.clone();
        want2.push((b"cache-control".to_vec(), b"no-cache".to_vec()));
        let want3 = hdrs(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]);
        assert_eq!(b[0].headers, want1);
        assert_eq!(b[1].headers, want2);
        assert_eq!(b[2].headers, want3);
    }

    #[tokio::test]
    async fn size_updates_are_honoured() {
        let mut block1 = Vec::new();
        // Literal with incremental indexing, new name: x-a: 1 -> index 62.
        block1.extend_from_slice(&[0x40, 3, b'x', b'-', b'a', 1, b'1']);
        // Literal with incremental indexing, :authority (static 1) = bad path -> new 62.
        block1.push(0x41);
        block1.push(BAD_PATH.len() as u8);
        block1.extend_from_slice(BAD_PATH);
        // Block 2: shrink to 0 (evicts everything), back to 4096, then a new
        // entry and a reference to it.
        let mut block2 = vec![0x20, 0x3f, 0xe1, 0x1f];
        block2.extend_from_slice(&[0x40, 3, b'x', b'-', b'b', 1, b'2', 0xbe]);
        // Block 3: the size update evicted x-a and :authority, so 63 is out of range.
        let input = with_preface(&[
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block1),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &block2),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 5, &[0xbe, 0xbf]),
        ]);
        let err = run(&input).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let input = with_preface(&[
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block1),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &block2),
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 5, &[0xbe]),
        ]);
        let out = run(&input).await.unwrap();
        let b = blocks(&parse_frames(&out));
        assert_eq!(
            b[0].headers,
            hdrs(&[("x-a", "1"), (":authority", "localhost")])
        );
        assert_eq!(b[1].headers, hdrs(&[("x-b", "2"), ("x-b", "2")]));
        assert_eq!(b[2].headers, hdrs(&[("x-b", "2")]));

        // A size above SETTINGS_HEADER_TABLE_SIZE is a decoding error.
        let input = with_preface(&[frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &[0x3f, 0xe2, 0x1f, 0x82],
        )]);
        assert!(run(&input).await.is_err());
    }

    #[tokio::test]
    async fn padding_priority_and_continuation_input() {
        let mut enc = loona_hpack::Encoder::new();
        let h = request_headers(Some(BAD_PATH));
        let block = encode(&mut enc, &h);
        let (a, rest) = block.split_at(10);
        let (b, c) = rest.split_at(20);
        let mut first = vec![3u8];
        first.extend_from_slice(&[0x80, 0, 0, 0, 15]);
        first.extend_from_slice(a);
        first.extend_from_slice(&[0, 0, 0]);
        let input = with_preface(&[
            frame(
                TYPE_HEADERS,
                FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
                1,
                &first,
            ),
            frame(TYPE_CONTINUATION, 0, 1, b),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, c),
        ]);
        for out in [
            run(&input).await.unwrap(),
            run_trickle(&input).await.unwrap(),
        ] {
            let frames = parse_frames(&out);
            assert_eq!(frames.len(), 1);
            let b = blocks(&frames);
            assert_eq!(
                b[0].flags,
                FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS
            );
            assert_eq!(b[0].priority.as_deref(), Some(&[0x80, 0, 0, 0, 15][..]));
            assert_eq!(b[0].headers, with_authority(&h, b"localhost"));
        }
    }

    #[tokio::test]
    async fn large_blocks_are_split_into_continuations() {
        let mut h = request_headers(Some(BAD_PATH));
        h.push((b"x-big".to_vec(), vec![b'v'; 40_000]));
        let mut enc = loona_hpack::Encoder::new();
        let block = encode(&mut enc, &h);
        let (a, b) = block.split_at(30_000);
        let input = with_preface(&[
            frame(
                TYPE_HEADERS,
                FLAG_PRIORITY,
                7,
                &[[0, 0, 0, 0, 1].as_slice(), a].concat(),
            ),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 7, b),
        ]);
        let out = run(&input).await.unwrap();
        let frames = parse_frames(&out);
        assert_eq!(frames.len(), 3);
        assert!(
            frames
                .iter()
                .all(|f| f.payload.len() <= MAX_OUT_FRAME_PAYLOAD)
        );
        assert_eq!(frames[0].flags, FLAG_PRIORITY);
        assert_eq!(frames[1].flags, 0);
        assert_eq!(frames[2].flags, FLAG_END_HEADERS);
        let b = blocks(&frames);
        assert_eq!(b[0].headers, with_authority(&h, b"localhost"));
    }

    #[tokio::test]
    async fn large_data_frames_stream_through() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let input = with_preface(&[data(1, &payload, false), frame(0x6, 0, 0, &[1; 8])]);
        assert_eq!(run(&input).await.unwrap(), input);
        let mut a = AuthorityTolerant::new(&input[..]);
        // The first reads return data before the whole frame is available.
        let mut small = [0u8; 50];
        let n = a.read(&mut small).await.unwrap();
        assert!(n > 0);
    }

    #[tokio::test]
    async fn every_static_name_round_trips() {
        let mut encoded = Vec::new();
        let mut want = Vec::new();
        for name in STATIC_NAMES {
            encode_literal(&mut encoded, name, b"v");
            want.push((name.to_vec(), b"v".to_vec()));
        }
        encode_literal(&mut encoded, b"x-custom", &vec![b'z'; 300]);
        want.push((b"x-custom".to_vec(), vec![b'z'; 300]));
        assert_eq!(loona_hpack::Decoder::new().decode(&encoded).unwrap(), want);
    }

    #[tokio::test]
    async fn not_http2_passes_through() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        assert_eq!(run(&input).await.unwrap(), input);
        assert_eq!(run_trickle(&input).await.unwrap(), input);
        let partial = &PREFACE[..10];
        assert_eq!(run(partial).await.unwrap(), partial);
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            // Invalid HPACK: index 0 and out-of-range indices.
            with_preface(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x80])]),
            with_preface(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0x7f],
            )]),
            // String longer than the block.
            with_preface(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS,
                1,
                &[0x00, 0x7f, 0xff, 0x7f],
            )]),
            // Block ending with a size update.
            with_preface(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x20])]),
            // Padding longer than the payload.
            with_preface(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS | FLAG_PADDED,
                1,
                &[9, 0x82],
            )]),
            // Priority flag on a too-short frame.
            with_preface(&[frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS | FLAG_PRIORITY,
                1,
                &[0x82],
            )]),
            // Header block interrupted by DATA, and by CONTINUATION of another stream.
            with_preface(&[frame(TYPE_HEADERS, 0, 1, &[0x82]), data(1, b"x", true)]),
            with_preface(&[
                frame(TYPE_HEADERS, 0, 1, &[0x82]),
                frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x84]),
            ]),
        ];
        for input in cases {
            let err = run(&input).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(run_trickle(&input).await.is_err());
        }
    }

    #[tokio::test]
    async fn oversize_header_blocks_are_rejected() {
        // A chain of CONTINUATION frames past 1 MiB.
        let chunk = vec![0u8; 16_384];
        let mut frames = vec![frame(TYPE_HEADERS, 0, 1, &chunk)];
        for _ in 0..70 {
            frames.push(frame(TYPE_CONTINUATION, 0, 1, &chunk));
        }
        let err = run(&with_preface(&frames)).await.unwrap_err();
        assert!(err.to_string().contains("1 MiB"), "{err}");
        // One frame announcing 16 MiB is refused before it is buffered.
        let mut huge = PREFACE.to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, TYPE_HEADERS, 0, 0, 0, 0, 1]);
        assert!(run(&huge).await.is_err());
        // A small block that expands past 1 MiB through table references.
        let mut block = vec![0x40, 5, b'x', b'-', b'b', b'i', b'g', 0x7f, 0xa1, 0x1e];
        block.extend_from_slice(&[b'a'; 4000]);
        block.extend(std::iter::repeat_n(0xbe, 300));
        let err = run(&with_preface(&[frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &block,
        )]))
        .await
        .unwrap_err();
        assert!(err.to_string().contains("1 MiB"), "{err}");
    }

    #[tokio::test]
    async fn random_input_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut input = if round % 3 == 0 {
                Vec::new()
            } else {
                PREFACE.to_vec()
            };
            for _ in 0..(next() % 6) {
                let len = (next() % 64) as usize;
                let kinds = [0x0, 0x1, 0x1, 0x4, 0x8, 0x9, 0x9, (next() % 256) as u8];
                let kind = kinds[(next() % kinds.len() as u64) as usize];
                let flags = (next() % 256) as u8;
                let stream = (next() % 4) as u32;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                input.extend_from_slice(&frame(kind, flags, stream, &payload));
            }
            if next() % 4 == 0 {
                let cut = (next() as usize) % (input.len() + 1);
                input.truncate(cut);
            }
            let _ = run(&input).await;
            let _ = run_trickle(&input).await;
        }
    }

    #[tokio::test]
    async fn writes_pass_through_untouched() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut a = AuthorityTolerant::new(near);
        let bytes = frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &[0x41, 3, b'/', b'x', b' '],
        );
        a.write_all(&bytes).await.unwrap();
        a.flush().await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, bytes);
    }
}
