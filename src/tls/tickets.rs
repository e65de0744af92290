//! The client's TLS 1.3 session tickets, for pool connections to a server known to be ours.
//!
//! A resumed handshake (PSK with a fresh ECDHE) skips the certificate and its signature: no
//! ECDSA sign on the server, no verify on the client, no certificate message. rustls's own
//! in-memory cache keeps 8 tickets per server, but a pool refill dials tens of connections
//! at once and every one past the eighth would miss; this store keeps up to `cap` per
//! server name, oldest dropped first, each handed out once (the trait's contract). TLS 1.2
//! sessions are not kept: our server speaks TLS 1.3 only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// Server names kept at most; a tunnel client talks to one, so more means something odd
/// (the store then starts over rather than grow).
const MAX_SERVERS: usize = 16;

/// Tickets and the key-exchange group each server chose last.
#[derive(Debug)]
pub struct TicketStore {
    cap: usize,
    servers: Mutex<HashMap<ServerName<'static>, Server>>,
}

#[derive(Debug, Default)]
struct Server {
    kx_hint: Option<NamedGroup>,
    tickets: VecDeque<Tls13ClientSessionValue>,
}

impl TicketStore {
    /// A store keeping up to `cap` tickets per server name.
    pub fn new(cap: usize) -> TicketStore {
        TicketStore {
            cap: cap.max(1),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// How many tickets are held for `name` (tests and diagnostics).
    #[cfg(test)]
    pub fn held(&self, name: &ServerName<'static>) -> usize {
        self.lock().get(name).map_or(0, |s| s.tickets.len())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ServerName<'static>, Server>> {
        // A panic aborts this binary, so a poisoned lock holds consistent data.
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_server<R>(&self, name: ServerName<'static>, f: impl FnOnce(&mut Server) -> R) -> R {
        let mut servers = self.lock();
        if servers.len() >= MAX_SERVERS && !servers.contains_key(&name) {
            servers.clear();
        }
        f(servers.entry(name).or_default())
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with_server(server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        let servers = self.lock();
        servers
            .iter()
            .find(|(name, _)| *name == server_name)
            .and_then(|(_, s)| s.kx_hint)
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let cap = self.cap;
        self.with_server(server_name, |s| {
            if s.tickets.len() >= cap {
                s.tickets.pop_front();
            }
            s.tickets.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        // Newest first: the oldest are the likeliest to have expired.
        self.lock().get_mut(server_name)?.tickets.pop_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{client_config_insecure, server_config_self_signed};
    use rustls::{ClientConnection, Connection, ServerConnection};
    use std::sync::Arc;

    /// One in-memory handshake with a fresh server that sends `tickets` tickets, which
    /// land in `store`.
    fn handshake_into(store: &Arc<TicketStore>, name: &'static str, tickets: usize) {
        let mut config = (*client_config_insecure().unwrap().config()).clone();
        config.resumption = rustls::client::Resumption::store(store.clone());
        let mut server = (*server_config_self_signed().unwrap().config).clone();
        server.send_tls13_tickets = tickets;
        let mut client = Connection::from(
            ClientConnection::new(Arc::new(config), ServerName::try_from(name).unwrap()).unwrap(),
        );
        let mut server = Connection::from(ServerConnection::new(Arc::new(server)).unwrap());
        for _ in 0..4 {
            crate::tls::tests::transfer(&mut client, &mut server).unwrap();
            crate::tls::tests::transfer(&mut server, &mut client).unwrap();
        }
        assert!(!client.is_handshaking());
    }

    #[test]
    fn the_store_keeps_at_most_cap_tickets_per_server_and_hands_each_out_once() {
        let store = Arc::new(TicketStore::new(2));
        let name = ServerName::try_from("none").unwrap();
        handshake_into(&store, "none", 3);
        assert_eq!(store.held(&name), 2, "the oldest ticket was dropped");
        assert!(store.take_tls13_ticket(&name).is_some());
        assert!(store.take_tls13_ticket(&name).is_some());
        assert!(store.take_tls13_ticket(&name).is_none(), "each ticket once");
    }

    #[test]
    fn tickets_are_kept_per_server_name_and_the_names_are_bounded() {
        let store = Arc::new(TicketStore::new(8));
        handshake_into(&store, "a.test", 1);
        handshake_into(&store, "b.test", 1);
        let (a, b) = (
            ServerName::try_from("a.test").unwrap(),
            ServerName::try_from("b.test").unwrap(),
        );
        assert_eq!((store.held(&a), store.held(&b)), (1, 1));
        assert!(store.kx_hint(&a).is_some());
        for i in 0..MAX_SERVERS {
            store.set_kx_hint(
                ServerName::try_from(format!("n{i}.test")).unwrap(),
                NamedGroup::X25519,
            );
        }
        assert!(store.lock().len() <= MAX_SERVERS);
    }
}
