//! Writing one event stream: headers at once, then each batch of frames as a chunk.
//!
//! The connection is split: a small task reads the client side only to notice that it
//! went away (a closed SSE client then costs nothing until the next event).

use std::rc::Rc;

use monoio::io::{AsyncReadRent, AsyncWriteRent, Split, Splitable};

use super::message::{write, EventSource};
use crate::wake::LocalFlag;

const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, PATCH, POST, PUT, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type, Authorization, X-API-Key, Cache-Control\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Stream `sub` to the client until the source ends or the client leaves.
pub async fn run<S>(stream: S, sub: Rc<dyn EventSource>)
where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
{
    let (mut rd, mut wr) = stream.into_split();
    let done = Rc::new(LocalFlag::default());
    let watcher_sub = sub.clone();
    let watcher_done = done.clone();
    monoio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(512);
        loop {
            monoio::select! {
                (res, b) = rd.read(buf) => {
                    buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        watcher_sub.close();
                        return;
                    }
                    buf.clear();
                }
                _ = watcher_done.wait() => return,
            }
        }
    });
    if write(&mut wr, HEAD.as_bytes().to_vec()).await.is_ok() {
        while let Some(frames) = std::future::poll_fn(|cx| sub.poll_frames(cx)).await {
            let len: usize = frames.iter().map(|f| f.len()).sum();
            let mut chunk = format!("{len:x}\r\n").into_bytes();
            for f in &frames {
                chunk.extend_from_slice(f.as_bytes());
            }
            chunk.extend_from_slice(b"\r\n");
            if write(&mut wr, chunk).await.is_err() {
                break;
            }
        }
        let _ = write(&mut wr, b"0\r\n\r\n".to_vec()).await;
    }
    sub.close();
    done.raise();
    let _ = wr.shutdown().await;
}
