//! Signal routing, for both ends and both threads that route: which worker owns a pool
//! connection ([`Owners`]), and which command a `tcp`/`udp`/`verify` signal becomes on
//! that worker ([`command_for`]).
//!
//! The server generated its pool ids, so an id names its owner (`PoolId::worker_of`). A
//! client's ids come from the server (a Go server's carry no worker), so the worker that
//! reads an id records it in [`ClientOwners`]. Either way the control-channel reader posts
//! session signals straight to the owner; only a signal that arrives before its id was
//! recorded goes through the control thread, which retries it until the id shows up.

pub use super::owners::ClientOwners;
use super::tunnel::TunnelCommand;
use crate::proto::{Action, PoolId, Signal};

/// Who owns which pool connection.
#[derive(Debug)]
pub enum Owners {
    /// Server: the id's own bits say (ids are sharded over this many workers).
    ById {
        /// Number of workers.
        workers: usize,
    },
    /// Client: as recorded by the workers that hold them ([`ClientOwners`]).
    Recorded,
}

impl Owners {
    /// The owner of `id`. A recorded owner is forgotten on the way: a pool connection
    /// carries one session.
    pub fn take(&self, id: PoolId, recorded: &ClientOwners) -> Option<usize> {
        match self {
            Owners::ById { workers } => {
                let n = u8::try_from(*workers).unwrap_or(u8::MAX);
                Some(usize::from(id.worker_of(n)))
            }
            Owners::Recorded => recorded.take(id),
        }
    }
}

/// Why a signal does not become a worker command.
#[derive(Debug, PartialEq, Eq)]
pub enum NotRouted {
    /// Not a `tcp`, `udp` or `verify` signal: the control thread handles it.
    NotForAWorker,
    /// Its pool id is missing or not 8 hex digits.
    BadId,
}

/// The command a `tcp`, `udp` or `verify` signal becomes on the worker that owns the pool
/// connection it names. `own_fp` is the server's certificate fingerprint for `verify`
/// (`None` on a client, which compares with what it saw on that connection).
pub fn command_for(
    sig: &Signal,
    own_fp: Option<&str>,
) -> Result<(PoolId, TunnelCommand), NotRouted> {
    if !matches!(sig.action, Action::Tcp | Action::Udp | Action::Verify) {
        return Err(NotRouted::NotForAWorker);
    }
    let id = sig
        .id
        .as_deref()
        .and_then(|t| PoolId::from_hex(t).ok())
        .ok_or(NotRouted::BadId)?;
    let remote = || sig.remote.clone().unwrap_or_default();
    let cmd = match sig.action {
        Action::Tcp => TunnelCommand::Tcp {
            id,
            remote: remote(),
        },
        Action::Udp => TunnelCommand::Udp {
            id,
            remote: remote(),
        },
        _ => TunnelCommand::CheckVerify {
            id,
            fp: sig.fp.clone().unwrap_or_default(),
            own: own_fp.map(str::to_owned),
        },
    };
    Ok((id, cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(action: Action, id: Option<&str>) -> Signal {
        let mut s = Signal::new(action);
        s.id = id.map(str::to_owned);
        s.remote = Some("192.0.2.7:5000".into());
        s.fp = Some("sha256:ab".into());
        s
    }

    #[test]
    fn session_signals_become_the_command_of_their_kind() {
        let (id, cmd) = command_for(&signal(Action::Tcp, Some("0000002a")), None).unwrap();
        assert_eq!(id.to_hex(), "0000002a");
        assert!(matches!(cmd, TunnelCommand::Tcp { remote, .. } if remote == "192.0.2.7:5000"));
        let (_, cmd) = command_for(&signal(Action::Udp, Some("0000002a")), None).unwrap();
        assert!(matches!(cmd, TunnelCommand::Udp { .. }));
    }

    #[test]
    fn verify_carries_the_peer_fingerprint_and_ours() {
        let sig = signal(Action::Verify, Some("00000001"));
        let (_, cmd) = command_for(&sig, Some("sha256:cd")).unwrap();
        match cmd {
            TunnelCommand::CheckVerify { fp, own, .. } => {
                assert_eq!(fp, "sha256:ab");
                assert_eq!(own.as_deref(), Some("sha256:cd"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn other_signals_and_bad_ids_are_not_routed() {
        for action in [Action::Ping, Action::Pong, Action::Flush] {
            assert_eq!(
                command_for(&signal(action, Some("00000001")), None).err(),
                Some(NotRouted::NotForAWorker)
            );
        }
        for id in [None, Some("xyz"), Some("123")] {
            assert_eq!(
                command_for(&signal(Action::Tcp, id), None).err(),
                Some(NotRouted::BadId)
            );
        }
    }

    #[test]
    fn server_ids_name_their_worker_and_client_owners_are_used_once() {
        let recorded = ClientOwners::default();
        let server = Owners::ById { workers: 4 };
        let id = PoolId::from_hex("00000007").unwrap();
        assert_eq!(server.take(id, &recorded), Some(3));
        assert_eq!(
            server.take(id, &recorded),
            Some(3),
            "an id's bits do not change"
        );

        let client = Owners::Recorded;
        assert_eq!(client.take(id, &recorded), None);
        recorded.record(id, 1);
        assert_eq!(client.take(id, &recorded), Some(1));
        assert_eq!(
            client.take(id, &recorded),
            None,
            "one session per pool connection"
        );
        recorded.record(id, 1);
        recorded.forget(id);
        assert_eq!(client.take(id, &recorded), None);
        assert!(
            recorded.is_empty(),
            "a used or closed connection leaves no entry"
        );
    }
}
