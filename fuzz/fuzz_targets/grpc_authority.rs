//! The HTTP/2 `:authority` adapter over an in-memory client byte stream.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rust_azure_provider::grpc::AuthorityTolerant;
use tokio::io::AsyncReadExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        // Small reads exercise every split of frames across reads.
        let chunk = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
        let reader = tokio_test_reader(data, chunk);
        let mut adapter = AuthorityTolerant::new(reader);
        let mut out = Vec::new();
        let _ = adapter.read_to_end(&mut out).await;
    });
});

/// A reader that yields `data` at most `chunk` bytes per read.
fn tokio_test_reader(data: &[u8], chunk: usize) -> ChunkReader<'_> {
    ChunkReader { data, chunk }
}

struct ChunkReader<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl tokio::io::AsyncRead for ChunkReader<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        std::task::Poll::Ready(Ok(()))
    }
}
