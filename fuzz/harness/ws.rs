//! Targets for pool type 2 (WebSocket): the upgrade request and answer, and the frames.

use nodepass::proto::handshake::Parse;
use nodepass::proto::ws::frame::{self, Decoder, Event, Role};
use nodepass::proto::ws::{
    encode_switching, encode_upgrade, key_from, parse_switching, parse_upgrade,
};

use super::{take_field, text};

/// Any bytes parse as a request or an answer without panic, a complete head lies inside
/// the input; our own request from a fuzzed host and key parses back whole, and our
/// answer to it passes our client's check.
pub fn ws_upgrade(data: &[u8]) {
    if let Ok(Parse::Complete(up)) = parse_upgrade(data) {
        assert!(up.head_len <= data.len());
        let answer = encode_switching(&up.key);
        assert_eq!(
            parse_switching(&answer, &up.key),
            Ok(Parse::Complete(answer.len()))
        );
    }
    if let Ok(Parse::Complete(n)) = parse_switching(data, "dGhlIHNhbXBsZSBub25jZQ==") {
        assert!(n <= data.len());
    }
    let (host, rest) = take_field(data, 255);
    let mut key = [0u8; 16];
    for (d, s) in key.iter_mut().zip(rest) {
        *d = *s;
    }
    let key = key_from(key);
    let wire = encode_upgrade(&text(host), &key);
    match parse_upgrade(&wire) {
        Ok(Parse::Complete(up)) => {
            assert_eq!(up.head_len, wire.len());
            assert_eq!(up.key, key);
        }
        other => panic!("our own upgrade does not parse: {other:?} {wire:?}"),
    }
}

/// Any bytes decode frame by frame without panic, in both roles and for read sizes from
/// the input: every data range lies in the input and is no longer than asked; fuzzed
/// payloads framed by our encoder (masked or not) decode back to themselves.
pub fn ws_frames(data: &[u8]) {
    let max = 1 + data.first().map_or(0, |b| *b as usize % 64);
    for role in [Role::Server, Role::Client] {
        let mut dec = Decoder::new(role);
        let mut buf = data.to_vec();
        let mut pos = 0;
        while let Ok((used, event)) = dec.decode(&mut buf[pos..], max) {
            assert!(pos + used <= buf.len());
            if let Some(Event::Data(r)) = &event {
                assert!(!r.is_empty() && r.len() <= max && r.end <= used);
            }
            pos += used;
            if event.is_none() {
                break;
            }
        }
    }
    let (payload, rest) = take_field(data, 255);
    let mask = rest.get(..4).map(|m| [m[0], m[1], m[2], m[3]]);
    let mut wire = Vec::new();
    frame::encode_binary(payload, mask, &mut wire);
    let role = if mask.is_some() {
        Role::Server
    } else {
        Role::Client
    };
    let mut dec = Decoder::new(role);
    let mut got = Vec::new();
    let mut pos = 0;
    loop {
        let (used, event) = dec
            .decode(&mut wire[pos..], max)
            .expect("our own frame decodes");
        match event {
            Some(Event::Data(r)) => got.extend_from_slice(&wire[pos + r.start..pos + r.end]),
            Some(e) => panic!("unexpected {e:?}"),
            None => break,
        }
        pos += used;
    }
    assert_eq!(got, payload);
}
