//! The control channel (pool connection `00000000`) on the worker that owns it: one reader
//! task that decodes signal lines and forwards them to the control thread, and the one
//! writer task that drains the signal queue. Also the TLS fingerprint check's pool side.

use std::rc::Rc;
use std::time::Instant;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::pool::{PoolConn, Which};
use super::pool_io::{PoolRead, PoolWrite};
use super::waits::{pooled_for_signal, Named};
use super::{TunnelCtx, TunnelSide};
use crate::bus::route::{self, Owners};
use crate::bus::{Command, Event, QueueRx};
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;
use crate::logging::{peer, Flood, Hit, FLOOD_REPORT_EVERY};
use crate::proto::{
    decode_line, encode_line, Action, LineBuf, PoolId, Signal, SignalError, MAX_SIGNAL_LINE,
};

/// Run the control channel on this worker (reader and writer tasks); `end` is the socket
/// (or stream) under `conn`, which both tasks shut down when the link is lost.
pub fn start(conn: PoolConn, end: End, ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) {
    let rx = t
        .spec
        .shared
        .signal_rx
        .lock()
        .ok()
        .and_then(|mut r| r.take());
    let Some(rx) = rx else {
        log::warn!("a second control channel was offered: closed");
        return;
    };
    let (r, w) = conn.into_split();
    ctx.spawn(read_signals(r, end.clone(), Rc::clone(ctx), Rc::clone(t)));
    ctx.spawn(write_signals(w, rx, end, Rc::clone(ctx), Rc::clone(t)));
    t.spec.shared.report(Event::ControlUp(ctx.index));
}

/// A session signal goes from the reader straight to the worker that owns its pool
/// connection: one thread hop instead of two through the control thread, on every new
/// session. On the server the id names that worker (we generated it); on the client the
/// worker that read the id recorded it (`TunnelShared::owners`). Verify signals, and a
/// client id not recorded yet, go to the control thread.
fn route_direct(t: &TunnelCtx, sig: &Signal, full: &mut Flood) -> bool {
    if !matches!(sig.action, Action::Tcp | Action::Udp) {
        return false;
    }
    let Some(workers) = t.spec.shared.workers.get() else {
        return false;
    };
    let Ok((id, cmd)) = route::command_for(sig, None) else {
        return false;
    };
    let owners = match t.spec.side {
        TunnelSide::Server { .. } => Owners::ById {
            workers: workers.len(),
        },
        TunnelSide::Client { .. } => Owners::Recorded,
    };
    // A client id not recorded yet: the control thread holds the signal until it is.
    let Some(owner) = owners
        .take(id, &t.spec.shared.owners)
        .and_then(|w| workers.get(w))
    else {
        return false;
    };
    if owner.post(Command::Mode(cmd)).is_err() && full.hit(Instant::now()) == Hit::Log {
        log::warn!("pool connection {id}: owner's command queue full, signal dropped");
    }
    true
}

fn lost(t: &TunnelCtx, end: &End, why: String) {
    end.shutdown_both();
    t.spec.shared.report(Event::ControlLost(why));
}

async fn read_signals(mut r: PoolRead, end: End, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    let idle = t.spec.report_interval * 3;
    let mut lines = LineBuf::new(MAX_SIGNAL_LINE);
    let mut buf = vec![0u8; 4096];
    // Junk lines and signals beyond a full worker queue: counted, summarised.
    let mut junk = Flood::new(FLOOD_REPORT_EVERY);
    let mut full = Flood::new(FLOOD_REPORT_EVERY);
    loop {
        // The link dies on a timeout, so dropping the read in flight loses nothing we need.
        let read = monoio::select! {
            r = monoio::time::timeout(idle, r.read(buf)) => r,
            _ = ctx.closing.wait() => return,
        };
        let n = match read {
            Err(_) => return lost(&t, &end, format!("control channel idle for {idle:?}")),
            Ok((Err(e), _)) => return lost(&t, &end, format!("control channel read: {e}")),
            Ok((Ok(0), _)) => return lost(&t, &end, "control channel closed by peer".into()),
            Ok((Ok(n), b)) => {
                buf = b;
                n
            }
        };
        if let Err(e) = lines.push(&buf[..n]) {
            return lost(&t, &end, format!("control channel: {e}"));
        }
        loop {
            match lines.next_line() {
                Ok(Some(line)) => match decode_line(line, &t.spec.key) {
                    Ok(sig) if route_direct(&t, &sig, &mut full) => {}
                    Ok(sig) => t.spec.shared.report(Event::Signal(sig)),
                    Err(e) => malformed(&mut junk, &e),
                },
                Ok(None) => break,
                Err(e) => return lost(&t, &end, format!("control channel: {e}")),
            }
        }
        let now = Instant::now();
        let secs = junk.every_secs();
        if let Some(n) = junk.summary_due(now) {
            log::warn!("{n} malformed signals skipped in the last {secs} s");
        }
        if let Some(n) = full.summary_due(now) {
            log::warn!("{n} signals dropped in the last {secs} s: their worker's queue was full");
        }
    }
}

/// A line that is not a signal: the first of a spell is logged (escaped: it may quote the
/// peer's bytes), the rest only counted, so junk costs at most one line per interval.
fn malformed(junk: &mut Flood, e: &SignalError) {
    if junk.hit(Instant::now()) == Hit::Log {
        let secs = junk.every_secs();
        log::warn!(
            "malformed signal skipped: {} (more are counted, reported every {secs} s)",
            peer(&e.to_string())
        );
    }
}

async fn write_signals(
    mut w: PoolWrite,
    rx: QueueRx<Vec<u8>>,
    end: End,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
) {
    loop {
        let line = monoio::select! {
            l = rx.recv() => l,
            _ = ctx.closing.wait() => None,
        };
        let Some(line) = line else { break };
        if let Err(e) = w.write_all(line).await.0 {
            return lost(&t, &end, format!("control channel write: {e}"));
        }
        if let Err(e) = w.flush().await {
            return lost(&t, &end, format!("control channel write: {e}"));
        }
    }
    let _ = w.shutdown().await;
}

/// `verify`, sending side: name one idle connection with our fingerprint (a client sends
/// what it saw on that connection).
///
/// Where users arrive this end owns its choice: it takes its oldest idle connection and
/// closes it after the signal, as Go does. The signalled end cannot know which of its idle
/// connections the peer has just handed to a user (Go's verify race, §9.23, which there
/// breaks that user's session), so it names its newest one and keeps it, retired: if the
/// peer's check takes it, it is closed `NP_POOL_GET_TIMEOUT` later; if a session signal
/// names it instead, the session gets it and the peer's check only logs a skip.
pub fn send_verify(ctx: &WorkerCtx, t: &TunnelCtx, own: Option<String>) {
    let (id, seen_fp) = if t.accepting {
        match t.shard.take_any() {
            Some(p) => (p.id, p.seen_fp),
            None => return no_conn(ctx, t),
        }
    } else {
        match t.shard.newest() {
            Some((id, end, seen)) => {
                let until = std::time::Instant::now() + t.spec.pool_get_timeout;
                t.shard.retire(id, Which::End(end), until);
                (id, seen)
            }
            None => return no_conn(ctx, t),
        }
    };
    let mut sig = Signal::new(Action::Verify);
    sig.id = Some(id.to_hex());
    sig.fp = own.or(seen_fp);
    t.spec.shared.send_signal(encode_line(&sig, &t.spec.key));
}

fn no_conn(ctx: &WorkerCtx, t: &TunnelCtx) {
    t.spec.shared.report(Event::VerifyNoConn(ctx.index));
}

/// `verify`, receiving side: compare the peer's fingerprint with ours (server) or with
/// what we saw on that connection (client). A connection that never shows up is Go's
/// verify race (§9.23): logged, never fatal.
pub async fn check_verify(
    id: PoolId,
    fp: String,
    own: Option<String>,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
) {
    let Some(p) = pooled_for_signal(id, Named::Verify, &ctx, &t).await else {
        return;
    };
    let Some(expected) = own.or(p.seen_fp) else {
        log::warn!("verify: no fingerprint recorded for pool connection {id}; skipped");
        return;
    };
    if fp.is_empty() {
        log::warn!("verify: peer sent an empty fingerprint (Go tls=2); skipped");
    } else if fp != expected {
        t.spec.shared.report(Event::VerifyFailed(format!(
            "certificate fingerprint mismatch: peer {}, local {expected}",
            peer(&fp)
        )));
    } else {
        log::info!("TLS fingerprint verified: {}", peer(&fp));
    }
}
