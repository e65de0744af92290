//! A tunnel server's pending `auth1` handshakes: answered, but not yet the run's. A
//! handshake request proves only that its sender once held the key (a recording replayed
//! after a restart proves as much), so the run goes to the first pending session whose
//! control connection proves the key with that session's nonces; the others are dropped.
//!
//! Pure state (the clock comes in as `now`), shared by every worker of a run behind a
//! mutex in [`super::TunnelShared`]. Bounded per source IP and in total, so a flood of
//! valid-looking replays holds a few dozen entries at most.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::RunAuth;

/// Pending sessions one source IP may hold; a newer one drops its oldest (an address can
/// only push out its own).
pub const PENDING_PER_IP: usize = 4;
/// Pending sessions of all sources; beyond this, a newcomer is refused until one proves
/// itself or expires.
pub const PENDING_TOTAL: usize = 64;

/// One answered `auth1` handshake.
#[derive(Debug, Clone)]
pub struct PendingSession {
    /// Who sent the handshake.
    pub peer: SocketAddr,
    /// The nonces and certificate its control connection must prove.
    pub run: RunAuth,
    /// Whether the handshake agreed on length-framed UDP.
    pub framed_udp: bool,
    /// When it is dropped unless proved (the handshake timeout after the answer).
    pub deadline: Instant,
}

/// Why a session could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingFull {
    /// [`PENDING_TOTAL`] sessions are pending.
    Total,
}

impl std::fmt::Display for PendingFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PENDING_TOTAL} handshakes already wait for their proof")
    }
}

/// The pending sessions of one run, and which source IPs have a control candidate in
/// flight (one at a time per IP: the client takes the first control id it is given).
#[derive(Debug, Default)]
pub struct Pending {
    sessions: Vec<PendingSession>,
    candidates: Vec<IpAddr>,
}

impl Pending {
    /// Add `s`; returns the sessions it pushed out (its IP's oldest, over
    /// [`PENDING_PER_IP`]).
    pub fn add(&mut self, s: PendingSession) -> Result<Vec<PendingSession>, PendingFull> {
        let ip = s.peer.ip();
        let mut out = Vec::new();
        while self.count(ip) >= PENDING_PER_IP {
            match self.sessions.iter().position(|p| p.peer.ip() == ip) {
                Some(i) => out.push(self.sessions.remove(i)),
                None => break,
            }
        }
        if self.sessions.len() >= PENDING_TOTAL {
            // Put back what was pushed out: nothing changes for a refused newcomer.
            self.sessions.extend(out);
            return Err(PendingFull::Total);
        }
        self.sessions.push(s);
        Ok(out)
    }

    fn count(&self, ip: IpAddr) -> usize {
        self.sessions.iter().filter(|p| p.peer.ip() == ip).count()
    }

    /// Remove and return the sessions whose deadline passed.
    pub fn expire(&mut self, now: Instant) -> Vec<PendingSession> {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sessions)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.sessions = kept;
        gone
    }

    /// Whether `ip` holds a pending session.
    pub fn has(&self, ip: IpAddr) -> bool {
        self.sessions.iter().any(|p| p.peer.ip() == ip)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Make a connection from `ip` its control candidate; false if one is in flight.
    pub fn claim(&mut self, ip: IpAddr) -> bool {
        if self.candidates.contains(&ip) {
            return false;
        }
        self.candidates.push(ip);
        true
    }

    /// The candidate of `ip` is done (proved, failed or gone).
    pub fn release(&mut self, ip: IpAddr) {
        self.candidates.retain(|c| *c != ip);
    }

    /// The first session of `ip` that `proves` accepts, removed with every other session
    /// (the run is its); `None` leaves everything as it was.
    pub fn take_proved(
        &mut self,
        ip: IpAddr,
        mut proves: impl FnMut(&PendingSession) -> bool,
    ) -> Option<(PendingSession, Vec<PendingSession>)> {
        let i = self
            .sessions
            .iter()
            .position(|p| p.peer.ip() == ip && proves(p))?;
        let won = self.sessions.remove(i);
        Some((won, self.drain()))
    }

    /// Remove and return every session (a run was committed).
    pub fn drain(&mut self) -> Vec<PendingSession> {
        self.candidates.clear();
        std::mem::take(&mut self.sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::{Nonce, Session};
    use std::time::Duration;

    fn session(ip: [u8; 4], tag: u8, deadline: Instant) -> PendingSession {
        PendingSession {
            peer: SocketAddr::from((ip, 1000 + u16::from(tag))),
            run: RunAuth {
                session: Session {
                    client: Nonce([tag; 32]),
                    server: Nonce([tag; 32]),
                },
                fp: String::new(),
            },
            framed_udp: false,
            deadline,
        }
    }

    #[test]
    fn an_address_over_its_cap_pushes_out_only_its_own_oldest() {
        let later = Instant::now() + Duration::from_secs(5);
        let mut p = Pending::default();
        p.add(session([10, 0, 0, 2], 0, later)).unwrap();
        for tag in 1..=PENDING_PER_IP as u8 {
            let out = p.add(session([10, 0, 0, 1], tag, later)).unwrap();
            assert!(out.is_empty());
        }
        let out = p.add(session([10, 0, 0, 1], 99, later)).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].run.session.client, Nonce([1; 32]));
        assert!(p.has(IpAddr::from([10, 0, 0, 2])));
    }

    #[test]
    fn the_total_is_bounded_and_a_refused_newcomer_changes_nothing() {
        let later = Instant::now() + Duration::from_secs(5);
        let mut p = Pending::default();
        for i in 0..PENDING_TOTAL {
            let ip = [10, 1, (i / 200) as u8, (i % 200) as u8];
            p.add(session(ip, 1, later)).unwrap();
        }
        assert_eq!(
            p.add(session([10, 2, 0, 0], 1, later)).unwrap_err(),
            PendingFull::Total
        );
        assert!(!p.has(IpAddr::from([10, 2, 0, 0])));
        assert_eq!(p.sessions.len(), PENDING_TOTAL);
    }

    #[test]
    fn the_first_proved_session_takes_the_run_and_drops_the_others() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let mut p = Pending::default();
        p.add(session([10, 0, 0, 1], 1, later)).unwrap();
        p.add(session([10, 0, 0, 1], 2, later)).unwrap();
        p.add(session([10, 0, 0, 9], 3, later)).unwrap();
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert!(p.claim(ip));
        assert!(!p.claim(ip), "one candidate per address");
        assert!(p.take_proved(ip, |_| false).is_none());
        assert_eq!(p.sessions.len(), 3, "a failed proof changes nothing");
        let (won, others) = p
            .take_proved(ip, |s| s.run.session.client == Nonce([2; 32]))
            .unwrap();
        assert_eq!(won.run.session.client, Nonce([2; 32]));
        assert_eq!(others.len(), 2);
        assert!(p.is_empty());
        assert!(p.claim(ip), "candidates are cleared with the sessions");
    }

    #[test]
    fn sessions_expire_at_their_deadline() {
        let now = Instant::now();
        let mut p = Pending::default();
        p.add(session([10, 0, 0, 1], 1, now)).unwrap();
        p.add(session([10, 0, 0, 1], 2, now + Duration::from_secs(1)))
            .unwrap();
        assert_eq!(p.expire(now).len(), 1);
        assert!(p.has(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(p.expire(now + Duration::from_secs(1)).len(), 1);
        assert!(p.is_empty());
    }
}
