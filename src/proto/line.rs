//! `LineBuf`: splits a byte stream into `\n`-terminated lines with a hard length limit.
//!
//! The control-channel reader pushes whatever it read and takes complete lines out. The
//! buffer never holds more than the unread complete lines plus one partial line of at most
//! `max_line` bytes: a peer that never sends `\n` gets [`SignalError::LineTooLong`].

use super::SignalError;

/// Default limit for a signal line; real signals are well under 1 KiB.
pub const MAX_SIGNAL_LINE: usize = 64 * 1024;

/// Accumulates bytes and yields complete lines.
#[derive(Debug)]
pub struct LineBuf {
    buf: Vec<u8>,
    /// Start of the first line not yet returned.
    start: usize,
    /// Bytes before this offset (from `start`) are known to contain no `\n`.
    scanned: usize,
    /// Length of the trailing bytes after the last `\n` in `buf`.
    partial: usize,
    max_line: usize,
}

impl LineBuf {
    /// An empty buffer that refuses lines longer than `max_line` bytes (newline excluded).
    pub fn new(max_line: usize) -> LineBuf {
        LineBuf {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            partial: 0,
            max_line,
        }
    }

    /// Appends bytes read from the stream. Fails when the unterminated tail would exceed
    /// the limit; the buffer is then unusable (the link should be closed).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SignalError> {
        if self.start > 0 {
            // Drop lines already handed out before growing.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.partial = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(pos) => bytes.len() - pos - 1,
            None => self.partial + bytes.len(),
        };
        if self.partial > self.max_line {
            return Err(SignalError::LineTooLong {
                limit: self.max_line,
            });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete line without its `\n` (and without a `\r` before it), or `None`
    /// when more bytes are needed. A complete line over the limit is an error.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, SignalError> {
        let from = self.start + self.scanned;
        let Some(rel) = self.buf[from..].iter().position(|&b| b == b'\n') else {
            self.scanned = self.buf.len() - self.start;
            return Ok(None);
        };
        let end = from + rel;
        let begin = self.start;
        self.start = end + 1;
        self.scanned = 0;
        let mut line = &self.buf[begin..end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.len() > self.max_line {
            return Err(SignalError::LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(Some(line))
    }

    /// Bytes held that were not yet returned as lines.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(lb: &mut LineBuf) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(line) = lb.next_line().unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn lines_split_across_pushes_come_out_whole() {
        let mut lb = LineBuf::new(100);
        lb.push(b"abc").unwrap();
        assert!(drain(&mut lb).is_empty());
        lb.push(b"def\nxy").unwrap();
        assert_eq!(drain(&mut lb), vec![b"abcdef".to_vec()]);
        lb.push(b"z\r\n\nlast\n").unwrap();
        assert_eq!(
            drain(&mut lb),
            vec![b"xyz".to_vec(), Vec::new(), b"last".to_vec()]
        );
        assert_eq!(lb.pending(), 0);
    }

    #[test]
    fn a_tail_without_newline_past_the_limit_is_refused() {
        let mut lb = LineBuf::new(8);
        lb.push(b"12345").unwrap();
        assert!(matches!(
            lb.push(b"6789"),
            Err(SignalError::LineTooLong { limit: 8 })
        ));
    }

    #[test]
    fn a_complete_line_past_the_limit_is_refused() {
        let mut lb = LineBuf::new(4);
        lb.push(b"123456\nok\n").unwrap();
        assert!(matches!(
            lb.next_line(),
            Err(SignalError::LineTooLong { limit: 4 })
        ));
        assert_eq!(lb.next_line().unwrap(), Some(&b"ok"[..]));
    }

    #[test]
    fn memory_stays_bounded_when_lines_are_consumed() {
        let mut lb = LineBuf::new(MAX_SIGNAL_LINE);
        for _ in 0..10_000 {
            lb.push(b"FlsKBg0EFgVHQ08JAgseTwQ=\n").unwrap();
            assert_eq!(drain(&mut lb).len(), 1);
        }
        assert!(lb.buf.capacity() < 1024);
    }
}
