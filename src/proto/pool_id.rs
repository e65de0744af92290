//! Pool connection ids: 4 raw bytes on the wire, 8 lowercase hex chars in signals.
//!
//! The server writes the id right after accepting (and after TLS) a pool connection; the
//! first id of a fresh pool is [`PoolId::CONTROL`] and that connection becomes the control
//! channel (PROTOCOL.md §3.A.2–3.A.3).
//!
//! Sharding (our design): ids we generate name the worker that owns the connection, so a
//! `tcp`/`udp` signal can be routed to the right worker without a shared map. The rule is
//! `u32::from_be_bytes(id) % workers == worker`. Ids made by a Go peer follow no such rule;
//! a side that receives ids (the client) must keep its own id → worker map.

use std::fmt;

/// Why an id could not be parsed or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolIdError {
    /// The text is not exactly 8 characters.
    BadLength(usize),
    /// A character is not a hex digit; the value is its offset.
    BadHexDigit(usize),
    /// The operating system random source failed.
    Random,
}

impl fmt::Display for PoolIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolIdError::BadLength(n) => write!(f, "pool id must be 8 hex chars, got {n}"),
            PoolIdError::BadHexDigit(at) => write!(f, "pool id has a non-hex char at {at}"),
            PoolIdError::Random => f.write_str("system random source failed"),
        }
    }
}

impl std::error::Error for PoolIdError {}

/// A pool connection id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(pub [u8; 4]);

impl PoolId {
    /// `00000000`: the first connection of a pool, used as the control channel.
    pub const CONTROL: PoolId = PoolId([0; 4]);

    /// Whether this is the control-channel id.
    pub fn is_control(self) -> bool {
        self == PoolId::CONTROL
    }

    /// The id as 8 lowercase hex chars, as used in signals and logs.
    pub fn to_hex(self) -> String {
        self.to_string()
    }

    /// Parses 8 hex chars (either case, as Go's `hex.DecodeString` accepts).
    pub fn from_hex(text: &str) -> Result<PoolId, PoolIdError> {
        let bytes = text.as_bytes();
        if bytes.len() != 8 {
            return Err(PoolIdError::BadLength(bytes.len()));
        }
        let mut id = [0u8; 4];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(PoolIdError::BadHexDigit(2 * i))?;
            let lo = hex_value(pair[1]).ok_or(PoolIdError::BadHexDigit(2 * i + 1))?;
            id[i] = hi << 4 | lo;
        }
        Ok(PoolId(id))
    }

    /// A random id from the system random source, never [`PoolId::CONTROL`].
    pub fn random() -> Result<PoolId, PoolIdError> {
        Ok(PoolId::for_worker_from(random_bytes()?, 0, 1))
    }

    /// A random id owned by `worker` of `workers` (see the module doc), never the control id.
    pub fn random_for_worker(worker: u8, workers: u8) -> Result<PoolId, PoolIdError> {
        Ok(PoolId::for_worker_from(random_bytes()?, worker, workers))
    }

    /// The deterministic core of [`PoolId::random_for_worker`]: moves `seed` to the nearest
    /// value whose residue modulo `workers` is `worker`. `workers == 0` counts as 1 and
    /// `worker` is taken modulo `workers`.
    pub fn for_worker_from(seed: [u8; 4], worker: u8, workers: u8) -> PoolId {
        let workers = u32::from(workers.max(1));
        let worker = u32::from(worker) % workers;
        let seed = u32::from_be_bytes(seed);
        let base = seed - seed % workers;
        let mut v = match base.checked_add(worker) {
            Some(v) => v,
            None => base - workers + worker,
        };
        if v == 0 {
            // Only reachable for worker 0: `workers` is the next value with residue 0.
            v = workers;
        }
        PoolId(v.to_be_bytes())
    }

    /// The worker owning an id we generated for a pool sharded over `workers` workers.
    pub fn worker_of(self, workers: u8) -> u8 {
        let workers = u32::from(workers.max(1));
        // The remainder is below `workers`, itself at most 255.
        (u32::from_be_bytes(self.0) % workers) as u8
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a:02x}{b:02x}{c:02x}{d:02x}")
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Four bytes from the system's secure random source, drawn from a per-thread batch so
/// that a busy pool pays one `getrandom` per 64 ids instead of one per pool connection.
fn random_bytes() -> Result<[u8; 4], PoolIdError> {
    RANDOM_BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        let (bytes, used) = &mut *batch;
        if *used + 4 > bytes.len() {
            rustls::crypto::ring::default_provider()
                .secure_random
                .fill(bytes)
                .map_err(|_| PoolIdError::Random)?;
            *used = 0;
        }
        let mut out = [0u8; 4];
        out.copy_from_slice(&bytes[*used..*used + 4]);
        // Each batch byte is handed out once.
        bytes[*used..*used + 4].fill(0);
        *used += 4;
        Ok(out)
    })
}

thread_local! {
    /// Unused random bytes of this thread and how many of them are used (starts "all used").
    static RANDOM_BATCH: std::cell::RefCell<([u8; 256], usize)> =
        const { std::cell::RefCell::new(([0; 256], 256)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_form_is_eight_lowercase_chars_and_parses_back() {
        let id = PoolId([0xcb, 0x5b, 0xaf, 0x6b]);
        assert_eq!(id.to_hex(), "cb5baf6b");
        assert_eq!(PoolId::from_hex("cb5baf6b"), Ok(id));
        assert_eq!(PoolId::from_hex("CB5BAF6B"), Ok(id));
        assert_eq!(PoolId::CONTROL.to_hex(), "00000000");
        assert!(PoolId::from_hex("00000000").unwrap().is_control());
    }

    #[test]
    fn malformed_hex_is_rejected_with_the_cause() {
        assert_eq!(PoolId::from_hex("abc"), Err(PoolIdError::BadLength(3)));
        assert_eq!(
            PoolId::from_hex("0000000g"),
            Err(PoolIdError::BadHexDigit(7))
        );
        assert_eq!(
            PoolId::from_hex("x0000000"),
            Err(PoolIdError::BadHexDigit(0))
        );
    }

    #[test]
    fn worker_is_recovered_from_every_generated_id() {
        let seeds = [
            [0, 0, 0, 0],
            [0, 0, 0, 1],
            [0xff; 4],
            [0xff, 0xff, 0xff, 0xfe],
            [1, 2, 3, 4],
        ];
        for workers in 1..=16u8 {
            for worker in 0..workers {
                for seed in seeds {
                    let id = PoolId::for_worker_from(seed, worker, workers);
                    assert_eq!(id.worker_of(workers), worker, "{seed:?} {worker}/{workers}");
                    assert!(!id.is_control());
                }
            }
        }
    }

    #[test]
    fn odd_worker_counts_are_clamped_not_panicking() {
        assert_eq!(PoolId::for_worker_from([0; 4], 0, 0), PoolId([0, 0, 0, 1]));
        assert_eq!(PoolId::for_worker_from([0, 0, 0, 9], 5, 3).worker_of(3), 2);
        assert_eq!(
            PoolId::for_worker_from([0xff; 4], 254, 255).worker_of(255),
            254
        );
    }

    #[test]
    fn random_ids_differ_and_are_never_control() {
        let a = PoolId::random_for_worker(1, 4).unwrap();
        let b = PoolId::random_for_worker(1, 4).unwrap();
        assert_eq!(a.worker_of(4), 1);
        assert_ne!(a, b, "4 random bytes twice in a row");
        assert!(!PoolId::random().unwrap().is_control());
    }
}
