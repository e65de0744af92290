//! Upgrade request and answer: Go's bytes, coder/websocket's checks.

use super::*;

/// RFC 6455 §1.3's example key and accept value.
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Go's upgrade request as captured (POOL_TYPES.md §2), with the RFC key.
fn go_request() -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\n\
         Connection: Upgrade\r\nSec-Websocket-Key: {RFC_KEY}\r\nSec-Websocket-Version: 13\r\n\
         Upgrade: websocket\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    .into_bytes()
}

fn request_with(method: &str, version: &str, headers: &str) -> Vec<u8> {
    format!("{method} /any/path {version}\r\nHost: x\r\n{headers}\r\n").into_bytes()
}

const GOOD: &str = "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[test]
fn accept_key_matches_the_rfc_example() {
    assert_eq!(accept_key(RFC_KEY), RFC_ACCEPT);
}

#[test]
fn our_request_is_byte_identical_to_go() {
    assert_eq!(encode_upgrade("127.0.0.1", RFC_KEY), go_request());
}

#[test]
fn go_request_parses_and_trailing_frames_are_left_alone() {
    let mut bytes = go_request();
    let head = bytes.len();
    bytes.extend_from_slice(&[0x82, 0x84, 1, 2, 3, 4]);
    match parse_upgrade(&bytes).unwrap() {
        Parse::Complete(up) => {
            assert_eq!(up.key, RFC_KEY);
            assert_eq!(up.head_len, head);
        }
        Parse::Partial => panic!("partial"),
    }
    assert!(matches!(
        parse_upgrade(&bytes[..head - 2]),
        Ok(Parse::Partial)
    ));
}

#[test]
fn any_path_and_header_case_are_taken() {
    let req = request_with("GET", "HTTP/1.1", GOOD);
    assert!(matches!(parse_upgrade(&req), Ok(Parse::Complete(_))));
}

#[test]
fn bad_upgrades_name_their_fault() {
    let cases: Vec<(Vec<u8>, UpgradeError)> = vec![
        (
            request_with("POST", "HTTP/1.1", GOOD),
            UpgradeError::Method("POST".into()),
        ),
        (
            request_with("GET", "HTTP/1.0", GOOD),
            UpgradeError::HttpVersion,
        ),
        (
            request_with("GET", "HTTP/1.1", &GOOD.replace("13", "12")),
            UpgradeError::Version("12".into()),
        ),
        (
            request_with(
                "GET",
                "HTTP/1.1",
                &GOOD.replace("keep-alive, Upgrade", "close"),
            ),
            UpgradeError::Connection,
        ),
        (
            request_with("GET", "HTTP/1.1", &GOOD.replace(RFC_KEY, "c2hvcnQ=")),
            UpgradeError::Key,
        ),
        (
            request_with("GET", "HTTP/1.1", &GOOD.replace(RFC_KEY, "!!!")),
            UpgradeError::Key,
        ),
        (
            request_with("GET", "HTTP/1.1", "Authorization: Bearer x\r\n"),
            UpgradeError::NotUpgrade,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(
            parse_upgrade(&req).unwrap_err(),
            want,
            "{}",
            String::from_utf8_lossy(&req)
        );
    }
    assert!(matches!(
        parse_upgrade(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n"),
        Err(UpgradeError::NotHttp(_))
    ));
    let long = vec![b'a'; MAX_HEAD + 1];
    assert!(matches!(
        parse_upgrade(&[b"GET / HTTP/1.1\r\nX: ".as_slice(), &long].concat()),
        Err(UpgradeError::HeadTooLarge)
    ));
}

#[test]
fn our_answer_passes_our_client_check_and_carries_the_id_after_it() {
    let mut answer = encode_switching(RFC_KEY);
    let head = answer.len();
    assert!(String::from_utf8_lossy(&answer).contains(RFC_ACCEPT));
    answer.extend_from_slice(&[0x82, 0x04, 0, 0, 0, 0]);
    assert_eq!(
        parse_switching(&answer, RFC_KEY).unwrap(),
        Parse::Complete(head)
    );
}

#[test]
fn a_wrong_answer_is_refused_with_its_reason() {
    let other = encode_switching("AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(parse_switching(&other, RFC_KEY), Err(UpgradeError::Accept));
    let full = encode_refusal(503, "pool full");
    assert_eq!(
        parse_switching(&full, RFC_KEY),
        Err(UpgradeError::Status(503))
    );
    assert!(String::from_utf8_lossy(&full).ends_with("\r\n\r\npool full\n"));
    assert!(matches!(
        parse_switching(b"HTTP/1.1 101 Switching", RFC_KEY),
        Ok(Parse::Partial)
    ));
}

#[test]
fn keys_are_24_base64_chars_of_16_bytes() {
    let key = key_from([7; 16]);
    assert_eq!(key.len(), 24);
    let req = request_with("GET", "HTTP/1.1", &GOOD.replace(RFC_KEY, &key));
    assert!(matches!(parse_upgrade(&req), Ok(Parse::Complete(u)) if u.key == key));
}
