//! WebSocket frames on a pool connection: the writer's one-frame binary messages and
//! control frames, and a [`Decoder`] that turns received bytes into payload ranges and
//! control events. Headers are parsed and written by `tungstenite`'s `FrameHeader`; the
//! rules on top are coder/websocket's (Go NodePass v1.14.0's library): client frames are
//! masked and server frames are not, control frames are final and at most 125 bytes, a
//! text message is refused (close 1003), no extension bits.

use std::fmt;
use std::io::Cursor;
use std::ops::Range;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// The endpoint is going away.
pub const CLOSE_AWAY: u16 = 1001;
/// Protocol error.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// A data type the endpoint cannot accept (a text message here).
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// Longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
pub const MAX_HEADER: usize = 14;
/// Longest control payload (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

/// Which end of the connection decodes: a server reads masked frames, a client unmasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The pool server (accepts upgrades).
    Server,
    /// The pool client (dials).
    Client,
}

/// Why received bytes are not a frame stream we take. Each maps to the close code sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A text message on a pool connection (close 1003, as Go's `NetConn`).
    Text,
    /// A broken header: reserved opcode, length MSB set (close 1002).
    Header(String),
    /// Extension bits set without an extension (close 1002).
    Reserved,
    /// A client frame without mask, or a server frame with one (close 1002).
    Masking,
    /// A fragmented or over-long control frame (close 1002).
    Control,
    /// A continuation outside a message, or a new message inside one (close 1002).
    Fragment,
    /// A close frame with a 1-byte payload (close 1002).
    CloseLength,
}

impl FrameError {
    /// The close code to answer this with.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::Text => CLOSE_UNSUPPORTED,
            _ => CLOSE_PROTOCOL,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Text => f.write_str("a text message on a binary pool connection"),
            FrameError::Header(e) => write!(f, "bad frame header: {e}"),
            FrameError::Reserved => f.write_str("frame with extension bits set"),
            FrameError::Masking => f.write_str("frame masking is wrong for its direction"),
            FrameError::Control => f.write_str("fragmented or over-long control frame"),
            FrameError::Fragment => f.write_str("bad message fragmentation"),
            FrameError::CloseLength => f.write_str("close frame with a 1-byte payload"),
        }
    }
}

impl std::error::Error for FrameError {}

/// What the next bytes meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Payload bytes at this range of the input (unmasked in place); never empty, never
    /// from two messages.
    Data(Range<usize>),
    /// A ping with its payload (answer with a pong).
    Ping(Vec<u8>),
    /// A pong (ignored).
    Pong,
    /// A close frame with its code, if it had one.
    Close(Option<u16>),
}

/// The data frame being delivered.
#[derive(Debug, Clone, Copy)]
struct Payload {
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Bytes of this frame already unmasked (the mask's phase).
    offset: usize,
}

/// Decodes a received byte stream frame by frame.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    payload: Option<Payload>,
    /// Inside a fragmented message (a continuation comes next).
    in_message: bool,
}

impl Decoder {
    /// A decoder for the frames `role` receives.
    pub fn new(role: Role) -> Decoder {
        Decoder {
            role,
            payload: None,
            in_message: false,
        }
    }

    /// Decode from `input` (received bytes not consumed yet), delivering at most `max`
    /// payload bytes (`max` > 0). Returns the bytes consumed and the event, or `None`
    /// when more input is needed. A data event is delivered only once all of
    /// `min(max, rest of the frame)` is in `input` (Go's `ReadFull` per frame), so a
    /// datagram sent as one message arrives in one read when it fits `max`.
    pub fn decode(
        &mut self,
        input: &mut [u8],
        max: usize,
    ) -> Result<(usize, Option<Event>), FrameError> {
        let mut used = 0;
        loop {
            if let Some(p) = self.payload.as_mut() {
                let want = usize::try_from(p.remaining).unwrap_or(usize::MAX).min(max);
                let rest = &mut input[used..];
                if rest.len() < want {
                    return Ok((used, None));
                }
                if let Some(mask) = p.mask {
                    apply_mask(&mut rest[..want], mask, p.offset);
                }
                p.offset = (p.offset + want) % 4;
                p.remaining -= want as u64;
                if p.remaining == 0 {
                    self.payload = None;
                }
                return Ok((used + want, Some(Event::Data(used..used + want))));
            }
            let mut cursor = Cursor::new(&input[used..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok((used, None)),
                Err(e) => return Err(FrameError::Header(e.to_string())),
            };
            let head = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
            self.check(&header, len)?;
            match header.opcode {
                OpCode::Control(c) => {
                    let end = head + len as usize;
                    let Some(body) = input.get_mut(used + head..used + end) else {
                        return Ok((used, None));
                    };
                    if let Some(mask) = header.mask {
                        apply_mask(body, mask, 0);
                    }
                    let event = control_event(c, body)?;
                    return Ok((used + end, Some(event)));
                }
                OpCode::Data(d) => {
                    self.start_data(d, header.is_final)?;
                    used += head;
                    if len > 0 {
                        self.payload = Some(Payload {
                            remaining: len,
                            mask: header.mask,
                            offset: 0,
                        });
                    }
                }
            }
        }
    }

    /// Whether the stream may end here: no frame or fragmented message is open.
    pub fn between_frames(&self) -> bool {
        self.payload.is_none() && !self.in_message
    }

    /// The header rules that do not depend on the opcode's meaning.
    fn check(&self, header: &FrameHeader, len: u64) -> Result<(), FrameError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(FrameError::Reserved);
        }
        if header.mask.is_some() != (self.role == Role::Server) {
            return Err(FrameError::Masking);
        }
        if len > i64::MAX as u64 {
            return Err(FrameError::Header("length has its top bit set".into()));
        }
        if matches!(header.opcode, OpCode::Control(_)) && (!header.is_final || len > MAX_CONTROL) {
            return Err(FrameError::Control);
        }
        Ok(())
    }

    /// A data frame starts: text is refused, continuations must continue a message.
    fn start_data(&mut self, d: Data, fin: bool) -> Result<(), FrameError> {
        match d {
            Data::Text => return Err(FrameError::Text),
            Data::Binary if self.in_message => return Err(FrameError::Fragment),
            Data::Continue if !self.in_message => return Err(FrameError::Fragment),
            Data::Reserved(op) => return Err(FrameError::Header(format!("opcode {op}"))),
            _ => {}
        }
        self.in_message = !fin;
        Ok(())
    }
}

fn control_event(c: Control, body: &[u8]) -> Result<Event, FrameError> {
    Ok(match c {
        Control::Ping => Event::Ping(body.to_vec()),
        Control::Pong => Event::Pong,
        Control::Close => match body {
            [] => Event::Close(None),
            [_] => return Err(FrameError::CloseLength),
            [a, b, ..] => Event::Close(Some(u16::from_be_bytes([*a, *b]))),
        },
        Control::Reserved(op) => return Err(FrameError::Header(format!("opcode {op}"))),
    })
}

/// XOR `buf` with `mask`, starting at phase `offset` of the mask. Eight bytes at a time
/// (the relay masks or unmasks every byte it carries).
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut v = [0u8; 8];
        v.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(v) ^ word).to_ne_bytes());
    }
    // A whole number of words went by: the rest starts at the rotated mask's phase 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

fn header_for(opcode: OpCode, mask: Option<[u8; 4]>) -> FrameHeader {
    FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
    }
}

/// Append one final frame with `payload` to `out` (masked with `mask` when given: a
/// client's frames).
pub fn encode_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let start = out.len();
    let header = header_for(opcode, mask);
    // Writing to a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let body = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[body..], mask, 0);
    }
    debug_assert!(body - start <= MAX_HEADER);
}

/// Append one binary message of one frame.
pub fn encode_binary(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_frame(OpCode::Data(Data::Binary), payload, mask, out);
}

/// Append a close frame with `code` (no reason).
pub fn encode_close(code: u16, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_frame(
        OpCode::Control(Control::Close),
        &code.to_be_bytes(),
        mask,
        out,
    );
}

/// Append a pong echoing `payload`.
pub fn encode_pong(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_frame(OpCode::Control(Control::Pong), payload, mask, out);
}

/// Masks for a client's frames: a per-connection random seed stepped by xorshift (RFC
/// 6455 only asks that a browser's script cannot predict them; nothing here is secret).
#[derive(Debug, Clone)]
pub struct Masks(u64);

impl Masks {
    /// Masks from a random seed (never zero).
    pub fn new(seed: [u8; 8]) -> Masks {
        Masks(u64::from_le_bytes(seed) | 1)
    }

    /// The next mask.
    pub fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x as u32).to_le_bytes()
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
