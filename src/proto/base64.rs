//! Standard base64 (RFC 4648 §4, with `=` padding): the outer layer of every signal line.
//!
//! Small and strict on purpose: Go's `base64.StdEncoding` rejects missing padding and
//! characters outside the alphabet, so we do too (except that Go also skips `\r`/`\n`
//! inside the text, which cannot occur here because lines are split on `\n` first).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Marks a byte that is not in the alphabet in [`DECODE`].
const INVALID: u8 = 0xff;

/// Reverse alphabet: byte → 6-bit value, or [`INVALID`].
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Appends the base64 text of `input` to `out`.
pub(crate) fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// Decodes padded base64 `text` into `out` (cleared first). On failure returns the offset
/// of the first offending byte (or `text.len()` when the length is not a multiple of 4).
pub(crate) fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), usize> {
    out.clear();
    if text.len() % 4 != 0 {
        return Err(text.len());
    }
    out.reserve(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, quad) in text.chunks_exact(4).enumerate() {
        let last = q + 1 == quads;
        let pad = match (quad[2], quad[3]) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last => 1,
            _ => 0,
        };
        let mut n = 0u32;
        for (i, &ch) in quad[..4 - pad].iter().enumerate() {
            let v = DECODE[ch as usize];
            if v == INVALID {
                return Err(q * 4 + i);
            }
            n |= u32::from(v) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
        // Go rejects non-zero bits hidden under the padding only in strict mode; it
        // accepts them by default, and so do we.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(input: &[u8]) -> String {
        let mut out = Vec::new();
        encode_into(input, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn dec(text: &str) -> Result<Vec<u8>, usize> {
        let mut out = vec![1, 2, 3];
        decode_into(text.as_bytes(), &mut out).map(|()| out)
    }

    // RFC 4648 §10 test vectors.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_encode_and_decode() {
        for (plain, text) in VECTORS {
            assert_eq!(enc(plain.as_bytes()), text);
            assert_eq!(dec(text).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            assert_eq!(dec(&enc(&all[..len])).unwrap(), &all[..len]);
        }
        assert_eq!(enc(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn bad_length_bad_character_and_misplaced_padding_are_rejected() {
        assert_eq!(dec("Zm9"), Err(3));
        assert_eq!(dec("Zm9v!A=="), Err(4));
        assert_eq!(dec("Zg==Zm9v"), Err(2));
        assert_eq!(dec("Z==="), Err(1));
        assert_eq!(dec("Zm-v"), Err(2));
    }
}
