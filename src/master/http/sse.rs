//! Writing one event stream: headers at once, then each batch of frames as a chunk.
//!
//! The connection is split: a small task reads the client side only to notice that it
//! went away (a closed SSE client then costs nothing until the next event).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use monoio::io::{AsyncReadRent, AsyncWriteRent, Split, Splitable};

use super::message::{write, EventSource};

const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, PATCH, POST, PUT, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type, Authorization, X-API-Key, Cache-Control\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Stream `sub` to the client until the source ends or the client leaves.
pub async fn run<S>(stream: S, sub: Rc<dyn EventSource>)
where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
{
    let (mut rd, mut wr) = stream.into_split();
    let done = Rc::new(Signal::default());
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
    done.fire();
    let _ = wr.shutdown().await;
}

/// A one-shot, same-thread "it happened" flag that any number of tasks can await.
#[derive(Default)]
struct Signal {
    fired: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    /// Fire the signal and wake every waiter (idempotent).
    fn fire(&self) {
        self.fired.set(true);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolve once fired.
    fn wait(self: &Rc<Self>) -> SignalWait {
        SignalWait {
            signal: self.clone(),
        }
    }
}

/// Future returned by [`Signal::wait`].
struct SignalWait {
    signal: Rc<Signal>,
}

impl Future for SignalWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired.get() {
            return Poll::Ready(());
        }
        self.signal.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
