//! The client's pool dialer on one worker: keeps this worker's share of the pool capacity
//! idle, dialling in parallel, with NodePass's adaptive interval and capacity (§4), and
//! refilling at once when a connection is taken (a miss never waits for the next tick).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::pool::{PoolConn, Pooled};
use super::{link, TunnelCtx, TunnelSide};
use crate::bus::{Event, RunAuth};
use crate::dataplane::dial::{dial, SourcePolicy};
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;
use crate::net::SocketExt;
use crate::proto::auth;
use crate::proto::PoolId;
use crate::runtime;
use crate::sys::SocketFd;
use crate::tls::ClientTls;
use crate::wake::LocalFlag;

/// How long the client waits for the server to write a pool connection's id (Go: 1 min).
const ID_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval step of the adaptive refill.
const STEP: Duration = Duration::from_millis(100);

/// Pool capacity and refill interval of one worker, adapted each round (§4).
struct Pace {
    capacity: usize,
    min: usize,
    max: usize,
    interval: Duration,
    min_interval: Duration,
    max_interval: Duration,
}

impl Pace {
    fn adjust_interval(&mut self, idle: usize) {
        if idle * 5 < self.capacity {
            self.interval = self.interval.saturating_sub(STEP).max(self.min_interval);
        } else if idle * 5 > self.capacity * 4 {
            self.interval = (self.interval + STEP).min(self.max_interval);
        }
    }

    fn adjust_capacity(&mut self, created: usize) {
        if created * 5 < self.capacity {
            self.capacity = self.capacity.saturating_sub(1).max(self.min);
        } else if created * 5 > self.capacity * 4 {
            self.capacity = (self.capacity + 1).min(self.max);
        }
    }
}

/// Keep this worker's shard filled until the worker stops.
pub async fn refill_loop(ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    let TunnelSide::Client {
        min,
        max,
        min_interval,
        max_interval,
        ..
    } = &t.spec.side
    else {
        return;
    };
    let workers = t.spec.workers.max(1);
    let share = |n: u32| (n as usize).div_ceil(workers).max(1);
    let (wmin, wmax) = (share(*min), share(*max));
    let mut pace = Pace {
        capacity: wmin.min(wmax),
        min: wmin.min(wmax),
        max: wmax,
        interval: *min_interval,
        min_interval: *min_interval,
        max_interval: *max_interval,
    };
    loop {
        if ctx.stopping.is_raised() {
            return;
        }
        pace.adjust_interval(t.shard.len());
        let need = pace.capacity.saturating_sub(t.shard.len());
        if need > 0 {
            let created = dial_round(need, &ctx, &t).await;
            pace.adjust_capacity(created);
        }
        monoio::select! {
            _ = monoio::time::sleep(pace.interval) => {}
            _ = t.shard.taken.wait() => t.shard.taken.lower(),
            _ = ctx.stopping.wait() => return,
        }
    }
}

/// The dials of one refill round, counted as they end.
#[derive(Default)]
struct Round {
    pending: Cell<usize>,
    created: Cell<usize>,
    done: LocalFlag,
}

/// Dial `need` pool connections in parallel (each a task of this worker, so a close ends
/// them too) and count how many were created.
async fn dial_round(need: usize, ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) -> usize {
    let round = Rc::new(Round::default());
    round.pending.set(need);
    for _ in 0..need {
        let round = Rc::clone(&round);
        let (ctx2, t2) = (Rc::clone(ctx), Rc::clone(t));
        ctx.spawn(async move {
            match dial_one(ctx2, t2).await {
                Ok(()) => round.created.set(round.created.get() + 1),
                Err(e) => log::debug!("pool dial failed: {e}"),
            }
            round.pending.set(round.pending.get() - 1);
            if round.pending.get() == 0 {
                round.done.raise();
            }
        });
    }
    round.done.wait().await;
    round.created.get()
}

/// The TLS handshake of one pool connection; the certificate fingerprint it saw. To a
/// server of ours (`auth1` agreed) a session is resumed when a ticket is at hand.
async fn connect_tls(
    tls: &ClientTls,
    server: SocketAddr,
    sni: &str,
    stream: monoio::net::TcpStream,
    ours: bool,
) -> io::Result<(PoolConn, Option<String>)> {
    let config = if ours {
        tls.config_resuming()
    } else {
        tls.config()
    };
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("sni {sni}: {e}")))?;
    match crate::tls::connect_seeing(config, name, stream).await {
        Ok((s, seen)) => {
            if seen.resumed {
                log::debug!("pool connection to {server}: TLS session resumed");
            }
            Ok((PoolConn::ClientTls(Box::new(s)), seen.fingerprint))
        }
        Err(e) => {
            let cause = crate::tls::describe_io(&e, crate::tls::Role::Client);
            let context = format!("pool connection to {server} (sni={sni}): TLS handshake failed");
            crate::tls::warn_handshake_failure(&context, &cause);
            Err(io::Error::other(format!("{context}: {cause}")))
        }
    }
}

async fn open(
    ctx: &WorkerCtx,
    t: &TunnelCtx,
    server: SocketAddr,
    tls: &Option<ClientTls>,
    sni: &str,
    ws_host: Option<&str>,
) -> io::Result<Pooled> {
    let stream = dial(server, &SourcePolicy::new(None), ctx.spec.tcp_dial_timeout).await?;
    // The TLS handshake and the id are read with monoio's ops; so is a copy relay later.
    runtime::fit_dialled(ctx.driver, &stream);
    let _ = stream.tune_stream(ctx.spec.keepalive);
    let fd = SocketFd::of(&stream);
    let (mut conn, seen_fp) = match tls {
        None => (PoolConn::Plain(stream), None),
        Some(tls) => monoio::time::timeout(
            t.spec.handshake_timeout,
            connect_tls(tls, server, sni, stream, t.spec.shared.auth.get().is_some()),
        )
        .await
        .map_err(|_| {
            let e = "TLS handshake timed out";
            crate::tls::warn_handshake_failure(
                &format!("pool connection to {server} (sni={sni})"),
                e,
            );
            io::Error::new(io::ErrorKind::TimedOut, e)
        })??,
    };
    if let Some(host) = ws_host {
        conn = monoio::time::timeout(t.spec.handshake_timeout, super::ws::connect(conn, fd, host))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "WebSocket upgrade timed out")
            })??;
    }
    finish_entry(conn, End::Socket(fd), seen_fp, t).await
}

/// A pool type 1 entry: a stream of this worker's QUIC connection, Go's `0x00` first.
async fn open_quic(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) -> io::Result<Pooled> {
    let client = t.quic.client(ctx, t, || match &t.spec.side {
        TunnelSide::Client {
            server,
            tls,
            max,
            quic_name: Some(name),
            ..
        } => {
            let tls = match tls {
                Some(tls) => tls.clone(),
                None => crate::tls::client_config_insecure().map_err(io::Error::other)?,
            };
            Ok((*server, name.clone(), tls, *max))
        }
        _ => Err(io::Error::other("not a QUIC pool client")),
    })?;
    let (stream, seen_fp) = client.open(t.spec.handshake_timeout).await?;
    let ch = stream.connection();
    let end = stream.end();
    let mut conn = PoolConn::Quic(Box::new(stream));
    let made = match conn.send_all(vec![0]).await {
        Ok(()) => finish_entry(conn, end, seen_fp, t).await,
        Err(e) => Err(e),
    };
    match &made {
        // A full pool: the server finished the stream unread; the connection is fine.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        // Go leaks the connection and dials a new one; ours is retired (closed once idle).
        Err(_) => client.fail(ch),
        Ok(_) => {}
    }
    made
}

/// Pool type 3: a new stream on this worker's HTTP/2 connection (dialled if needed).
async fn open_h2(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) -> io::Result<Pooled> {
    let c = super::http2::ensure_conn(ctx, t).await?;
    let (conn, seen_fp) = super::http2::open_stream(&c, t).await?;
    let end = End::Stream(conn.end());
    finish_entry(PoolConn::H2(Box::new(conn)), end, seen_fp, t).await
}

/// The common end of every entry: the `auth1` proof of the key, the id.
async fn finish_entry(
    mut conn: PoolConn,
    end: End,
    seen_fp: Option<String>,
    t: &TunnelCtx,
) -> io::Result<Pooled> {
    let profile = t.spec.shared.auth.get();
    if let Some(run) = profile {
        check_certificate(run, seen_fp.as_deref(), t)?;
        conn.send_all(auth::POOL_MAGIC.to_vec()).await?;
    }
    let id = monoio::time::timeout(ID_TIMEOUT, conn.recv_exact::<4>())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no pool id"))??;
    if let Some(run) = profile {
        let proof = run.session.pool_proof(&t.spec.key, PoolId(id), &run.fp);
        conn.send_all(proof.to_vec()).await?;
    }
    Ok(Pooled {
        id: PoolId(id),
        conn,
        seen_fp,
        end,
        since: std::time::Instant::now(),
    })
}

/// `auth1` with TLS: the certificate on this connection must be the one the server proved
/// in the handshake. Anything else is someone in between: fatal for the run.
fn check_certificate(run: &RunAuth, seen: Option<&str>, t: &TunnelCtx) -> io::Result<()> {
    if run.fp.is_empty() || seen == Some(run.fp.as_str()) {
        return Ok(());
    }
    let why = format!(
        "pool connection shows certificate {}, not the {} the server proved",
        seen.unwrap_or("(none)"),
        run.fp
    );
    t.spec.shared.report(Event::VerifyFailed(why.clone()));
    Err(io::Error::new(io::ErrorKind::PermissionDenied, why))
}

async fn dial_one(ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) -> io::Result<()> {
    let TunnelSide::Client {
        server,
        tls,
        sni,
        ws_host,
        quic_name,
        http2,
        ..
    } = &t.spec.side
    else {
        return Ok(());
    };
    let p = if quic_name.is_some() {
        open_quic(&ctx, &t).await?
    } else if http2.is_some() {
        open_h2(&ctx, &t).await?
    } else {
        open(&ctx, &t, *server, tls, sni, ws_host.as_deref()).await?
    };
    if p.id.is_control() {
        let first = t
            .spec
            .shared
            .control_taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            link::start(p.conn, p.end, &ctx, &t);
        }
        return Ok(());
    }
    let id = p.id;
    // Recorded before it can be taken: a signal naming it finds its owner at once.
    t.spec.shared.owners.record(id, ctx.index);
    if !t.shard.insert(p) {
        t.spec.shared.owners.forget(id);
    }
    Ok(())
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod pace_tests;
