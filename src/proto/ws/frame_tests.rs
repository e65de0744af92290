//! Frame codec: Go's bytes, masking, fragmentation, control frames, bad input.

use super::*;

/// Decode everything in `input` with a read size of `max`: the payloads in order, the
/// control events, and the bytes left undecoded.
fn decode_all(role: Role, input: &[u8], max: usize) -> (Vec<Vec<u8>>, Vec<Event>, usize) {
    let mut dec = Decoder::new(role);
    let mut buf = input.to_vec();
    let (mut pos, mut data, mut events) = (0, Vec::new(), Vec::new());
    loop {
        let (used, event) = dec.decode(&mut buf[pos..], max).expect("valid frames");
        let start = pos;
        pos += used;
        match event {
            Some(Event::Data(r)) => data.push(buf[start + r.start..start + r.end].to_vec()),
            Some(e) => events.push(e),
            None => return (data, events, buf.len() - pos),
        }
    }
}

fn error_of(role: Role, input: &[u8]) -> FrameError {
    let mut buf = input.to_vec();
    Decoder::new(role).decode(&mut buf, 1 << 16).unwrap_err()
}

#[test]
fn go_server_id_message_is_decoded_by_a_client() {
    let (data, events, left) = decode_all(Role::Client, &[0x82, 0x04, 0, 0, 0, 0], 4);
    assert_eq!(data, vec![vec![0, 0, 0, 0]]);
    assert!(events.is_empty());
    assert_eq!(left, 0);
}

#[test]
fn server_frames_are_plain_and_client_frames_masked() {
    let mut out = Vec::new();
    encode_binary(&[0, 0, 0, 0], None, &mut out);
    assert_eq!(out, [0x82, 0x04, 0, 0, 0, 0]);
    let mut masked = Vec::new();
    encode_binary(b"abcde", Some([1, 2, 3, 4]), &mut masked);
    assert_eq!(&masked[..6], &[0x82, 0x85, 1, 2, 3, 4]);
    assert_eq!(
        &masked[6..],
        &[b'a' ^ 1, b'b' ^ 2, b'c' ^ 3, b'd' ^ 4, b'e' ^ 1]
    );
    let (data, _, _) = decode_all(Role::Server, &masked, 100);
    assert_eq!(data, vec![b"abcde".to_vec()]);
    let mut close = Vec::new();
    encode_close(CLOSE_NORMAL, None, &mut close);
    assert_eq!(close, [0x88, 0x02, 0x03, 0xe8]);
}

#[test]
fn long_payloads_use_16_and_64_bit_lengths_and_round_trip() {
    for len in [125usize, 126, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
        let mut out = Vec::new();
        encode_binary(&payload, Some([9, 8, 7, 6]), &mut out);
        let (data, _, _) = decode_all(Role::Server, &out, 1 << 20);
        assert_eq!(data.concat(), payload, "len {len}");
        // Read sizes smaller than the frame split it, never past its end.
        let (parts, _, _) = decode_all(Role::Server, &out, 1000);
        assert!(parts.iter().all(|p| p.len() <= 1000));
        assert_eq!(parts.concat(), payload, "len {len} in parts");
    }
}

#[test]
fn a_partial_frame_waits_for_the_whole_read() {
    let mut out = Vec::new();
    encode_binary(&[5; 10], None, &mut out);
    let mut dec = Decoder::new(Role::Client);
    let mut part = out[..7].to_vec();
    assert_eq!(dec.decode(&mut part, 100).unwrap(), (2, None));
    let mut rest = out[2..].to_vec();
    assert_eq!(
        dec.decode(&mut rest, 100).unwrap(),
        (10, Some(Event::Data(0..10)))
    );
    assert!(dec.between_frames());
}

#[test]
fn fragmented_messages_and_interleaved_pings_are_taken() {
    let mut input = vec![0x02, 0x02, b'a', b'b']; // binary, not final
    input.extend_from_slice(&[0x89, 0x01, b'p']); // ping in between
    input.extend_from_slice(&[0x80, 0x01, b'c']); // final continuation
    input.extend_from_slice(&[0x8a, 0x00]); // pong
    input.extend_from_slice(&[0x88, 0x02, 0x03, 0xe9]); // close 1001
    let (data, events, left) = decode_all(Role::Client, &input, 100);
    assert_eq!(data, vec![b"ab".to_vec(), b"c".to_vec()]);
    assert_eq!(
        events,
        vec![
            Event::Ping(b"p".to_vec()),
            Event::Pong,
            Event::Close(Some(1001))
        ]
    );
    assert_eq!(left, 0);
}

#[test]
fn empty_messages_are_skipped() {
    let (data, events, _) = decode_all(Role::Client, &[0x82, 0x00, 0x82, 0x01, 7], 10);
    assert_eq!(data, vec![vec![7]]);
    assert!(events.is_empty());
}

#[test]
fn bad_frames_are_refused_with_their_close_code() {
    let text = error_of(Role::Client, &[0x81, 0x02, b'h', b'i']);
    assert_eq!(text, FrameError::Text);
    assert_eq!(text.close_code(), CLOSE_UNSUPPORTED);
    assert_eq!(
        error_of(Role::Server, &[0x82, 0x01, 0]),
        FrameError::Masking
    );
    assert_eq!(
        error_of(Role::Client, &[0x82, 0x81, 1, 2, 3, 4, 0]),
        FrameError::Masking
    );
    assert_eq!(error_of(Role::Client, &[0xc2, 0x00]), FrameError::Reserved);
    assert_eq!(error_of(Role::Client, &[0x80, 0x00]), FrameError::Fragment);
    assert_eq!(error_of(Role::Client, &[0x09, 0x00]), FrameError::Control);
    assert_eq!(
        error_of(Role::Client, &[0x89, 0x7e, 0x00, 0x80]),
        FrameError::Control
    );
    assert_eq!(
        error_of(Role::Client, &[0x88, 0x01, 3]),
        FrameError::CloseLength
    );
    assert!(matches!(
        error_of(Role::Client, &[0x83, 0x00]),
        FrameError::Header(_)
    ));
    let huge = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        error_of(Role::Client, &huge),
        FrameError::Header(_)
    ));
    assert_eq!(
        error_of(Role::Client, &[0x02, 0x00, 0x82, 0x00]),
        FrameError::Fragment
    );
}

#[test]
fn a_huge_but_valid_length_just_waits_for_bytes() {
    let mut input = vec![0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3];
    let mut dec = Decoder::new(Role::Client);
    assert_eq!(dec.decode(&mut input, 1 << 16).unwrap(), (10, None));
    assert!(!dec.between_frames());
}

#[test]
fn masks_differ_from_one_frame_to_the_next() {
    let mut m = Masks::new([0; 8]);
    let a = m.next_mask();
    let b = m.next_mask();
    assert_ne!(a, b);
}

#[test]
fn word_masking_matches_the_byte_rule_at_every_phase_and_length() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    for offset in 0..4 {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask, offset);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[(offset + i) % 4])
                .collect();
            assert_eq!(fast, slow, "offset {offset} len {len}");
        }
    }
}
