//! Splitting a child's output stream into lines, in bounded memory: bytes come in as they
//! are read, complete lines go out one at a time, and a line longer than [`MAX_LINE`] is
//! cut into pieces of that size (a child printing without newlines cannot grow the master).

/// The longest line handed on whole; longer ones are cut at this length.
pub const MAX_LINE: usize = 8 * 1024;

/// Bytes read from one stream and not yet handed on as lines.
#[derive(Debug, Default)]
pub struct LineBuf {
    buf: Vec<u8>,
    /// Start of the bytes not yet handed on.
    start: usize,
    /// The stream ended: the rest, even without a newline, is the last line.
    ended: bool,
}

impl LineBuf {
    /// Append bytes just read.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The stream ended: the bytes left form the last line.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The next line without its line ending (`\n`, `\r\n`, any trailing `\r`), if one is
    /// complete (or cut at [`MAX_LINE`], or the rest after [`LineBuf::end`]).
    pub fn next_line(&mut self) -> Option<String> {
        let rest = &self.buf[self.start..];
        let (take, skip) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i <= MAX_LINE => (i, i + 1),
            _ if rest.len() >= MAX_LINE => (MAX_LINE, MAX_LINE),
            _ if self.ended && !rest.is_empty() => (rest.len(), rest.len()),
            _ => {
                self.release();
                return None;
            }
        };
        let mut line = &rest[..take];
        while let [head @ .., b'\r'] = line {
            line = head;
        }
        let line = String::from_utf8_lossy(line).into_owned();
        self.start += skip;
        Some(line)
    }

    /// Give back the memory of a drained buffer that a burst made large.
    fn release(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > 2 * MAX_LINE {
                self.buf = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut LineBuf) -> Vec<String> {
        std::iter::from_fn(|| b.next_line()).collect()
    }

    #[test]
    fn lines_split_across_reads_come_out_whole_and_in_order() {
        let mut b = LineBuf::default();
        b.push(b"one\r\ntw");
        assert_eq!(drain(&mut b), ["one"]);
        b.push(b"o\n\nthree");
        assert_eq!(drain(&mut b), ["two", ""]);
        b.end();
        assert_eq!(drain(&mut b), ["three"], "the unterminated rest at the end");
        assert_eq!(b.next_line(), None);
    }

    #[test]
    fn a_line_without_newline_is_cut_at_the_limit() {
        let mut b = LineBuf::default();
        b.push(&vec![b'x'; MAX_LINE * 2 + 10]);
        let lines = drain(&mut b);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        b.push(b"\n");
        assert_eq!(drain(&mut b), ["x".repeat(10)]);
        assert!(
            b.buf.capacity() <= 2 * MAX_LINE,
            "a drained burst frees its memory"
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut b = LineBuf::default();
        b.push(b"a\xffb\n");
        assert_eq!(drain(&mut b), ["a\u{fffd}b"]);
    }
}
