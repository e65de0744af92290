//! The extension profile's authentication (feature `auth1`), spoken only when both ends are
//! ours (PROTOCOL.md §1, §9.2–§9.4, §11). Go peers never see any of it.
//!
//! - The client's handshake carries a fresh 32-byte nonce `Nc` ([`NONCE_HEADER`]) and its
//!   proof of the key over it, `HMAC(key, "np-auth1 client" ‖ Nc)` ([`PROOF_HEADER`]),
//!   instead of (`auth=strict`) or beside (for Go servers) the static token. A server
//!   checks the proof and refuses a nonce it has seen: a recorded handshake replayed later
//!   is refused.
//! - The server answers with its own fresh nonce `Ns` and a proof that it holds the key:
//!   `HMAC(key, "np-auth1 server" ‖ Nc ‖ Ns ‖ flow ‖ max ‖ tls ‖ type ‖ fp)`, where `fp` is
//!   its certificate's fingerprint (empty for tls=0). The client checks the proof, so a
//!   peer without the key cannot pose as the server, rewrite the tunnel configuration, or
//!   swap the certificate: every TLS pool connection must show that `fp`.
//! - Every pool connection proves the key, bound to this run and to that connection: the
//!   client writes [`POOL_MAGIC`], the server answers with the connection's id, the client
//!   writes `HMAC(key, "np-auth1 pool" ‖ Nc ‖ Ns ‖ id ‖ fp)`. The server checks it before
//!   the connection enters the pool (or becomes the control channel), for tls=0 as well.
//!   `Ns` is fresh per handshake and ids are fresh per connection, so nothing recorded from
//!   an earlier run or another connection passes.
//!
//! Everything here is pure (bytes in, bytes out).

use hmac::{Mac, SimpleHmac};
use sha2::Sha256;

use super::pool_id::PoolId;

/// The feature name in the extension marker.
pub const FEATURE_AUTH1: &str = "auth1";
/// Request header carrying the client's nonce (hex).
pub const NONCE_HEADER: &str = "X-Np-Nonce";
/// Request header carrying the client's proof over its nonce (hex).
pub const PROOF_HEADER: &str = "X-Np-Proof";
/// Reply JSON field carrying the server's nonce (hex).
pub const NONCE_FIELD: &str = "nonce";
/// Reply JSON field carrying the server's proof (hex).
pub const PROOF_FIELD: &str = "proof";
/// Reply JSON field carrying the server certificate's fingerprint (tls 1/2).
pub const FP_FIELD: &str = "fp";
/// What a client writes first on a pool connection of an `auth1` run.
pub const POOL_MAGIC: [u8; 4] = *b"NPA1";
/// Length of a nonce and of every MAC.
pub const LEN: usize = 32;

/// A 32-byte random value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; LEN]);

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl Nonce {
    /// A fresh nonce from the system random source (`None` if it failed).
    pub fn fresh() -> Option<Nonce> {
        let mut n = [0u8; LEN];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut n)
            .ok()?;
        Some(Nonce(n))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parse 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Nonce> {
        from_hex(text).map(Nonce)
    }
}

/// The tunnel configuration a server announces, as its proof covers it (the handshake's
/// `TunnelConfig` in wire terms; this module stays below the handshake).
#[derive(Clone, Copy, Debug)]
pub struct Announced<'a> {
    /// `+` or `-`.
    pub flow: &'a str,
    /// `max`.
    pub max: u32,
    /// `tls` code.
    pub tls: u8,
    /// `type` code.
    pub pool_type: u8,
}

/// The client's proof of the key over its handshake nonce.
pub fn client_proof(key: &str, client: &Nonce) -> [u8; LEN] {
    let mut mac = keyed(key);
    mac.update(b"np-auth1 client\0");
    mac.update(&client.0);
    mac.finalize().into_bytes().into()
}

/// The two nonces of one run: what every proof of that run is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The client's nonce.
    pub client: Nonce,
    /// The server's nonce.
    pub server: Nonce,
}

impl Session {
    /// The server's proof over the configuration it announces (flow word, max, tls and
    /// type codes, as in the reply) and its certificate.
    pub fn server_proof(&self, key: &str, announced: Announced<'_>, fp: &str) -> [u8; LEN] {
        let mut mac = keyed(key);
        mac.update(b"np-auth1 server\0");
        mac.update(&self.client.0);
        mac.update(&self.server.0);
        mac.update(announced.flow.as_bytes());
        mac.update(&announced.max.to_be_bytes());
        mac.update(&[announced.tls, announced.pool_type]);
        mac.update(fp.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The client's proof for pool connection `id`, which showed certificate `fp` ("" for
    /// tls=0).
    pub fn pool_proof(&self, key: &str, id: PoolId, fp: &str) -> [u8; LEN] {
        let mut mac = keyed(key);
        mac.update(b"np-auth1 pool\0");
        mac.update(&self.client.0);
        mac.update(&self.server.0);
        mac.update(&id.0);
        mac.update(fp.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

fn keyed(key: &str) -> SimpleHmac<Sha256> {
    // SimpleHmac takes keys of any length: this never fails.
    <SimpleHmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Compare two secrets (tokens, MACs, API keys) in time that does not depend on where
/// they differ. The length is not treated as secret. The one comparison of secrets in the
/// crate.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Exactly 64 hex digits (either case) as 32 bytes.
pub fn from_hex(text: &str) -> Option<[u8; LEN]> {
    let t = text.as_bytes();
    if t.len() != LEN * 2 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; LEN];
    for (i, pair) in t.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The client nonces a server has seen lately, so that a recorded handshake replayed later
/// is refused. Bounded: the oldest are forgotten first (a replay older than that still
/// gets nothing, since every proof after the handshake is bound to the server's fresh
/// nonce).
#[derive(Debug, Default)]
pub struct SeenNonces {
    order: std::collections::VecDeque<[u8; LEN]>,
    set: std::collections::BTreeSet<[u8; LEN]>,
}

/// How many client nonces a server remembers.
pub const SEEN_NONCES: usize = 4096;

impl SeenNonces {
    /// An empty set (usable in a `static`).
    pub const fn new() -> SeenNonces {
        SeenNonces {
            order: std::collections::VecDeque::new(),
            set: std::collections::BTreeSet::new(),
        }
    }

    /// Record `n`; false if it was seen before (a replay).
    pub fn first_time(&mut self, n: &Nonce) -> bool {
        if !self.set.insert(n.0) {
            return false;
        }
        self.order.push_back(n.0);
        if self.order.len() > SEEN_NONCES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            client: Nonce([1; LEN]),
            server: Nonce([2; LEN]),
        }
    }

    const CFG: Announced<'static> = Announced {
        flow: "+",
        max: 1024,
        tls: 1,
        pool_type: 0,
    };

    #[test]
    fn proofs_are_bound_to_key_nonces_config_id_and_certificate() {
        let s = session();
        let p = s.server_proof("k", CFG, "sha256:aa");
        assert_eq!(p, s.server_proof("k", CFG, "sha256:aa"));
        assert_ne!(p, s.server_proof("other", CFG, "sha256:aa"));
        assert_ne!(p, s.server_proof("k", CFG, "sha256:ab"));
        let mut changed = CFG;
        changed.flow = "-";
        assert_ne!(p, s.server_proof("k", changed, "sha256:aa"));
        changed = CFG;
        changed.max = 1023;
        assert_ne!(p, s.server_proof("k", changed, "sha256:aa"));
        let mut other = s;
        other.server = Nonce([3; LEN]);
        assert_ne!(p, other.server_proof("k", CFG, "sha256:aa"));

        let id = PoolId([0, 0, 0, 7]);
        let q = s.pool_proof("k", id, "");
        assert_ne!(q, s.pool_proof("k", PoolId([0, 0, 0, 8]), ""));
        assert_ne!(q, s.pool_proof("k", id, "sha256:aa"));
        assert_ne!(q, other.pool_proof("k", id, ""));
        assert_ne!(q.as_slice(), &p[..], "domain separated");
        let c = client_proof("k", &s.client);
        assert_ne!(c, client_proof("other", &s.client));
        assert_ne!(c, client_proof("k", &s.server));
        assert_ne!(c, q);
    }

    #[test]
    fn pool_proof_matches_an_independent_hmac() {
        // HMAC-SHA256("k", "np-auth1 pool\0" ‖ 01×32 ‖ 02×32 ‖ 00000007), from Python's hmac.
        let got = to_hex(&session().pool_proof("k", PoolId([0, 0, 0, 7]), ""));
        assert_eq!(
            got,
            "ef535126580d415f1725eaae96fd64d6f4387ecab621f42dac4d5884ffcabf2c"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_anything_else() {
        let n = Nonce([0xab; LEN]);
        assert_eq!(Nonce::from_hex(&n.to_hex()), Some(n));
        assert_eq!(Nonce::from_hex(&n.to_hex().to_uppercase()), Some(n));
        assert_eq!(Nonce::from_hex(&n.to_hex()[1..]), None);
        assert_eq!(Nonce::from_hex(&"zz".repeat(LEN)), None);
        assert_eq!(Nonce::from_hex(""), None);
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn a_replayed_nonce_is_refused_and_memory_is_bounded() {
        let mut seen = SeenNonces::default();
        assert!(seen.first_time(&Nonce([9; LEN])));
        assert!(!seen.first_time(&Nonce([9; LEN])));
        for i in 0..(SEEN_NONCES as u32 + 10) {
            let mut n = [0u8; LEN];
            n[..4].copy_from_slice(&i.to_be_bytes());
            n[31] = 1;
            seen.first_time(&Nonce(n));
        }
        assert_eq!(seen.order.len(), SEEN_NONCES);
        assert_eq!(seen.set.len(), SEEN_NONCES);
    }
}
