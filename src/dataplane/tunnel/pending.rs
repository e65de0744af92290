//! The server's pending `auth1` handshakes (`bus::pending`): a proved request is answered
//! at once but does not start the run; the run goes to the first pending session whose
//! control connection (pool id `00000000`) proves the key with that session's nonces.
//! A recorded handshake replayed after a restart (the seen-nonce set is in memory only)
//! gets an answer and nothing more: it cannot prove a pool connection, so it neither takes
//! the run nor keeps the real client out. Legacy (Go token) handshakes do not come here.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pool::PoolConn;
use super::{link, TunnelCtx, CONFLICT, PROOF_WAIT};
use crate::bus::pending::{Pending, PendingSession};
use crate::bus::{Event, RunAuth, TunnelShared};
use crate::crowd::Ticket;
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;
use crate::proto::handshake::{self, TunnelConfig};
use crate::proto::{auth, PoolId};
use crate::tls::ServerTls;

/// How often a pool connection waiting for its address's control candidate looks again.
const TURN_POLL: Duration = Duration::from_millis(10);
/// How long a control candidate has for its proof. Our client writes it as soon as it has
/// read its id; the place is its address's only one, so a peer that sends the magic and
/// stalls must not hold it for long.
const CANDIDATE_WAIT: Duration = Duration::from_secs(1);

/// Answer a request that proved the key with `client`'s nonce: a fresh server nonce and
/// proof, and a pending session holding them until its control connection proves the key.
pub(super) fn answer(
    client: auth::Nonce,
    offered: Option<&str>,
    peer: SocketAddr,
    reply: &TunnelConfig,
    tls: &Option<ServerTls>,
    t: &TunnelCtx,
) -> Vec<u8> {
    if t.spec.shared.client_ip.get().is_some() {
        log::warn!("tunnel handshake from {peer} refused: a tunnel is already running");
        return CONFLICT.to_vec();
    }
    let Some(server) = auth::Nonce::fresh() else {
        log::error!("tunnel handshake from {peer} refused: no random nonce available");
        return CONFLICT.to_vec();
    };
    let session = auth::Session { client, server };
    let fp = tls.as_ref().map(|t| t.fingerprint()).unwrap_or_default();
    let announced = auth::Announced {
        flow: reply.flow.as_str(),
        max: reply.max,
        tls: reply.tls,
        pool_type: reply.pool_type,
    };
    let fields = handshake::AuthFields {
        nonce: Some(server.to_hex()),
        proof: Some(auth::to_hex(&session.server_proof(
            &t.spec.key,
            announced,
            &fp,
        ))),
        fp: (!fp.is_empty()).then(|| fp.clone()),
    };
    let ext = handshake::common_features(offered);
    let pending = PendingSession {
        peer,
        run: RunAuth { session, fp },
        framed_udp: handshake::frames_udp(ext.as_deref(), reply.pool_type),
        deadline: Instant::now() + t.spec.handshake_timeout,
    };
    let added = with_pending(t, |p| p.add(pending));
    match added {
        Some(Ok(pushed_out)) => dropped(t, pushed_out, "a newer handshake from its address"),
        Some(Err(full)) => {
            t.warns
                .warn(|| format!("tunnel handshake from {peer} refused: {full}"));
            return CONFLICT.to_vec();
        }
        None => return CONFLICT.to_vec(),
    }
    log::debug!(
        "tunnel client {peer} extensions: {}; pending until a control connection proves the key",
        ext.as_deref().unwrap_or("none")
    );
    super::log_sending_config(reply);
    handshake::encode_reply(reply, ext.as_deref(), &fields)
}

/// Run `f` on the pending set after dropping the expired sessions (`None`: the lock is
/// poisoned, which only a panic elsewhere can do).
fn with_pending<R>(t: &TunnelCtx, f: impl FnOnce(&mut Pending) -> R) -> Option<R> {
    let mut p = t.spec.shared.pending.lock().ok()?;
    let expired = p.expire(Instant::now());
    let out = f(&mut p);
    drop(p);
    if !expired.is_empty() {
        let why = format!(
            "no control connection proved the key within {:?} (a replay, or a client \
             that went away)",
            t.spec.handshake_timeout
        );
        dropped(t, expired, &why);
    }
    Some(out)
}

/// Log the sessions that were dropped, and why (WARN, within the worker's budget).
fn dropped(t: &TunnelCtx, sessions: Vec<PendingSession>, why: &str) {
    for s in sessions {
        t.warns
            .warn(|| format!("tunnel handshake from {} dropped: {why}", s.peer));
    }
}

/// Whether `ip` holds a pending session: its connections are pool connections (or more
/// handshakes), not only handshakes.
pub(super) fn is_pending(t: &TunnelCtx, ip: IpAddr) -> bool {
    t.spec.shared.client_ip.get().is_none() && with_pending(t, |p| p.has(ip)).unwrap_or(false)
}

/// A legacy handshake started the run: every pending session is dropped.
pub(super) fn drop_all(t: &TunnelCtx, by: SocketAddr) {
    if let Some(all) = with_pending(t, Pending::drain) {
        dropped(t, all, &format!("a legacy client ({by}) started the run"));
    }
}

/// What a pool connection from a pending address does next.
pub(super) enum Turn<'a> {
    /// It is its address's control candidate: it gets id `00000000` and must prove a
    /// pending session.
    Control(Candidate<'a>),
    /// A run was committed meanwhile: it is an ordinary pool connection, if that run is
    /// its address's `auth1` run.
    Committed,
    /// Its address holds no pending session any more (dropped or expired).
    Gone,
}

/// The control candidate's place for its address; given back when dropped.
pub(super) struct Candidate<'a> {
    shared: &'a TunnelShared,
    ip: IpAddr,
}

impl Drop for Candidate<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.release(self.ip);
        }
    }
}

/// Wait until this connection may be its address's control candidate (one at a time: our
/// client takes the first control id it is given), or a run was committed, or its
/// address's sessions are gone.
pub(super) async fn wait_turn<'a>(peer: SocketAddr, t: &'a TunnelCtx) -> Turn<'a> {
    let ip = peer.ip();
    let until = Instant::now() + t.spec.handshake_timeout;
    loop {
        let shared: &'a TunnelShared = &t.spec.shared;
        let claimed = with_pending(t, |p| {
            if shared.client_ip.get().is_some() {
                Some(Turn::Committed)
            } else if !p.has(ip) {
                Some(Turn::Gone)
            } else {
                // `then`, not `then_some`: a Candidate made and dropped here would give
                // back a place it never had, under the lock it takes.
                p.claim(ip).then(|| Turn::Control(Candidate { shared, ip }))
            }
        });
        match claimed {
            None => return Turn::Gone,
            Some(Some(turn)) => return turn,
            Some(None) if Instant::now() >= until => return Turn::Gone,
            Some(None) => monoio::time::sleep(TURN_POLL).await,
        }
    }
}

/// Whether a connection that waited while a run was committed may join it: only the
/// committed `auth1` run's address (a legacy run's connections never sent the magic).
pub(super) fn joins_run(peer: SocketAddr, t: &TunnelCtx) -> bool {
    t.spec.shared.auth.get().is_some() && t.spec.shared.client_ip.get() == Some(&peer.ip())
}

/// The control candidate: write id `00000000`, read the proof, and commit the run to the
/// pending session of this address it proves (dropping every other); anything else is
/// closed with the reason in the log.
pub(super) async fn prove_control(
    mut conn: PoolConn,
    end: End,
    peer: SocketAddr,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
    ticket: Ticket,
    candidate: Candidate<'_>,
) {
    let id = PoolId::CONTROL;
    if let Err(e) = conn.send_all(id.0.to_vec()).await {
        log::debug!("pool connection from {peer}: writing id failed: {e}");
        return;
    }
    let wait = CANDIDATE_WAIT.min(PROOF_WAIT).min(t.spec.handshake_timeout);
    let proof = match monoio::time::timeout(wait, conn.recv_exact::<{ auth::LEN }>()).await {
        Ok(Ok(proof)) => proof,
        Ok(Err(_)) | Err(_) => {
            t.warns.warn(|| {
                format!("pool connection from {peer} refused: no proof of the key for {id}")
            });
            return;
        }
    };
    let Some(won) = commit(&proof, peer, t) else {
        t.warns.warn(|| {
            format!(
                "pool connection from {peer} refused: wrong proof of the key for {id} (no \
                 pending handshake of this address matches)"
            )
        });
        return;
    };
    drop(candidate);
    drop(ticket);
    log::debug!("tunnel client {} proved the key: the run is its", won.peer);
    t.spec.shared.report(Event::HandshakeDone(won.peer));
    link::start(conn, end, ctx, t);
}

/// Commit the run to the pending session of `peer`'s address that `proof` proves, all
/// under the pending lock (so two candidates cannot both win); the others are dropped.
fn commit(proof: &[u8; auth::LEN], peer: SocketAddr, t: &TunnelCtx) -> Option<PendingSession> {
    let shared = &t.spec.shared;
    let key = &t.spec.key;
    let proves = |s: &PendingSession| {
        let expected = s.run.session.pool_proof(key, PoolId::CONTROL, &s.run.fp);
        auth::same_secret(proof, &expected)
    };
    let (won, others) = with_pending(t, |p| {
        let (won, others) = p.take_proved(peer.ip(), proves)?;
        if shared.client_ip.set(peer.ip()).is_err() {
            log::warn!("pool connection from {peer} refused: a tunnel is already running");
            return None;
        }
        // Set while the lock is held: a waiting connection that sees the client IP
        // also sees the run's proof.
        let _ = shared.auth.set(won.run.clone());
        shared.framed_udp.store(won.framed_udp, Ordering::Release);
        shared.control_taken.store(true, Ordering::Release);
        Some((won, others))
    })??;
    let why = format!("{} proved the key first", won.peer);
    dropped(t, others, &why);
    Some(won)
}
