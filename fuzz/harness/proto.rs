//! Targets for the tunnel wire formats: handshake request and reply, signal lines, auth1.

use nodepass::proto::auth::{self, Nonce, SeenNonces};
use nodepass::proto::handshake::{
    check_request, encode_reply, encode_request, encode_request_ours, parse_reply,
    parse_reply_at_eof, parse_request, AuthFields, Flow, Parse, Proved, TunnelConfig,
};
use nodepass::proto::{decode_line, encode_line, Action, LineBuf, Signal};

use super::{take_field, text};

/// Server side: any bytes parse without panic, a complete head lies inside the input and
/// judging it never panics; a request our client encodes from fuzzed host/key/extension
/// parses back whole and proves the key (bearer token, and auth1 with a fuzzed nonce).
pub fn handshake_request(data: &[u8]) {
    if let Ok(Parse::Complete(req)) = parse_request(data) {
        assert!(req.head_len <= data.len());
        let _ = req.path();
        let _ = check_request(&req, "key");
    }
    let (host, rest) = take_field(data, 255);
    let (key, rest) = take_field(rest, 255);
    // Our client's extension list is a few words: bounded like the other fields, so the
    // encoded head stays under the server's head limit (an unbounded list overflowed it:
    // regressions/handshake_request/crash-f3b5…, a harness error, not a parser one).
    let (ext, _) = take_field(rest, 255);
    let (host, key) = (text(host), text(key));
    let ext = (!ext.is_empty()).then(|| text(ext));
    let wire = encode_request(&host, &key, ext.as_deref());
    let Ok(Parse::Complete(req)) = parse_request(&wire) else {
        panic!("our own request does not parse: {wire:?}");
    };
    assert_eq!(req.head_len, wire.len());
    assert_eq!(check_request(&req, &key), Ok(Proved::Token));
    let mut n = [0u8; auth::LEN];
    for (d, s) in n.iter_mut().zip(data.iter().rev()) {
        *d = *s;
    }
    let nonce = Nonce(n);
    let wire = encode_request_ours(&host, &key, false, ext.as_deref(), Some(&nonce));
    let Ok(Parse::Complete(req)) = parse_request(&wire) else {
        panic!("our own auth1 request does not parse: {wire:?}");
    };
    assert_eq!(check_request(&req, &key), Ok(Proved::Auth1(nonce)));
}

/// Client side: a complete reply lies inside the input and the EOF parse agrees with it;
/// a reply our server encodes from fuzzed fields parses back to the same fields.
pub fn handshake_reply(data: &[u8]) {
    let live = parse_reply(data);
    let at_eof = parse_reply_at_eof(data);
    if let Ok(Parse::Complete(r)) = &live {
        assert!(r.consumed <= data.len());
        match &at_eof {
            Ok(e) => assert_eq!(e, r),
            Err(e) => panic!("complete reply {r:?} fails at EOF: {e}"),
        }
    }
    if let Ok(r) = &at_eof {
        assert!(r.consumed <= data.len());
    }
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let (max, rest) = take_field(rest, 4);
    let max = max
        .iter()
        .fold(0u32, |a, &x| a.wrapping_shl(8) | u32::from(x));
    let cfg = TunnelConfig {
        flow: if b & 1 == 0 { Flow::Plus } else { Flow::Minus },
        max,
        tls: (b >> 1) % 3,
        pool_type: (b >> 3) % 4,
    };
    let (ext, rest) = take_field(rest, 64);
    let (nonce, rest) = take_field(rest, 64);
    let (proof, rest) = take_field(rest, 64);
    // A fingerprint is ~100 bytes: bounded like the other fields, so the encoded body
    // stays under the client's body limit (unbounded, thousands of escaped NULs went over
    // it: regressions/handshake_reply/crash-e3d1…, a harness error, not a parser one).
    let (fp, _) = take_field(rest, 255);
    let opt = |present: bool, v: &[u8]| present.then(|| text(v));
    let ext = opt(b & 0x20 != 0, ext);
    let auth = AuthFields {
        nonce: opt(b & 0x40 != 0, nonce),
        proof: opt(b & 0x80 != 0, proof),
        fp: opt(!fp.is_empty(), fp),
    };
    let wire = encode_reply(&cfg, ext.as_deref(), &auth);
    let Ok(Parse::Complete(r)) = parse_reply(&wire) else {
        panic!("our own reply does not parse: {wire:?}");
    };
    assert_eq!(r.consumed, wire.len());
    assert_eq!((r.config, r.extension, r.auth), (cfg, ext, auth));
}

/// Signal lines: decoding never panics and a decoded signal re-encodes to a line that
/// decodes to the same signal; a fuzzed signal round-trips; the line splitter never hands
/// out a line over its limit or with a newline in it, whatever the chunking.
pub fn signal_line(data: &[u8]) {
    let (key, line) = take_field(data, 32);
    let key = text(key);
    if let Ok(sig) = decode_line(line, &key) {
        let again = decode_line(&encode_line(&sig, &key), &key);
        assert_eq!(again.ok().as_ref(), Some(&sig));
    }
    let (word, rest) = take_field(line, 16);
    let (remote, rest) = take_field(rest, 64);
    let (id, fp) = take_field(rest, 64);
    let opt = |v: &[u8]| (!v.is_empty()).then(|| text(v));
    let sig = Signal {
        action: Action::from_word(&text(word)),
        remote: opt(remote),
        id: opt(id),
        fp: opt(fp),
    };
    let wire = encode_line(&sig, &key);
    assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(decode_line(&wire, &key).ok(), Some(sig));
    split_lines(data);
}

fn split_lines(data: &[u8]) {
    const LIMIT: usize = 64;
    let mut buf = LineBuf::new(LIMIT);
    let mut rest = data;
    while !rest.is_empty() {
        let n = (rest[0] as usize % 17 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if buf.push(chunk).is_err() {
            return;
        }
        loop {
            match buf.next_line() {
                Ok(Some(line)) => {
                    assert!(line.len() <= LIMIT && !line.contains(&b'\n'));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.pending() <= LIMIT + 17);
    }
}

/// The auth1 profile: hex nonces and proofs parse without panic and round-trip through
/// `to_hex`; a fuzzed nonce round-trips; a nonce is fresh once only.
pub fn auth_profile(data: &[u8]) {
    let s = text(data);
    if let Some(n) = Nonce::from_hex(&s) {
        assert_eq!(n.to_hex(), s.to_ascii_lowercase());
        assert_eq!(Nonce::from_hex(&n.to_hex()), Some(n));
    }
    if let Some(p) = auth::from_hex(&s) {
        assert_eq!(auth::from_hex(&auth::to_hex(&p)), Some(p));
    }
    let mut n = [0u8; auth::LEN];
    for (d, s) in n.iter_mut().zip(data) {
        *d = *s;
    }
    let nonce = Nonce(n);
    assert_eq!(Nonce::from_hex(&nonce.to_hex()), Some(nonce));
    let mut seen = SeenNonces::default();
    assert!(seen.first_time(&nonce));
    assert!(!seen.first_time(&nonce));
    let _ = auth::same_secret(data, &n);
}
