//! The QUIC state a tunnel worker keeps, and the task that sweeps gone entries out of its
//! shard.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::{client, Ep};

/// A tunnel worker's QUIC state: the server's endpoint or the client's connection.
#[derive(Default)]
pub struct QuicSlot {
    ep: RefCell<Option<Rc<Ep>>>,
    client: RefCell<Option<Rc<client::QuicClient>>>,
}

impl QuicSlot {
    /// Server: this worker's endpoint.
    pub fn set_server(&self, ep: Rc<Ep>) {
        *self.ep.borrow_mut() = Some(ep);
    }

    /// Client: this worker's QUIC client, started at its first use.
    pub fn client(
        &self,
        ctx: &Rc<crate::dataplane::host::WorkerCtx>,
        t: &Rc<crate::dataplane::tunnel::TunnelCtx>,
        start: impl FnOnce() -> io::Result<(SocketAddr, String, crate::tls::ClientTls, u32)>,
    ) -> io::Result<Rc<client::QuicClient>> {
        if let Some(c) = &*self.client.borrow() {
            return Ok(Rc::clone(c));
        }
        let (server, name, tls, max) = start()?;
        let c = client::QuicClient::start(ctx, server, name, tls, max)?;
        spawn_sweeper(c.endpoint(), ctx, t);
        *self.ep.borrow_mut() = Some(Rc::clone(c.endpoint()));
        *self.client.borrow_mut() = Some(Rc::clone(&c));
        Ok(c)
    }

    /// The worker closes: every connection is closed (`pool closed`).
    pub fn close(&self) {
        if let Some(ep) = self.ep.borrow_mut().take() {
            ep.close_all();
        }
        self.client.borrow_mut().take();
    }
}

/// Sweep gone idle entries out of the worker's shard whenever `ep` saw a stream or a
/// connection end under it.
pub fn spawn_sweeper(
    ep: &Rc<Ep>,
    ctx: &Rc<crate::dataplane::host::WorkerCtx>,
    t: &Rc<crate::dataplane::tunnel::TunnelCtx>,
) {
    let (ep, ctx2, t) = (Rc::clone(ep), Rc::clone(ctx), Rc::clone(t));
    ctx.spawn(async move {
        loop {
            monoio::select! {
                _ = ep.gone.wait() => {}
                _ = ctx2.closing.wait() => return,
            }
            ep.gone.lower();
            let n = t.shard.sweep_gone();
            if n > 0 {
                log::debug!("{n} idle QUIC pool entries gone (stream or connection ended)");
            }
        }
    });
}
