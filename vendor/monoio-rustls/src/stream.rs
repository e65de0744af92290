use std::{
    io::{self, BufRead, Write},
    ops::{Deref, DerefMut},
};

use monoio::{
    buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf},
    io::{AsyncReadRent, AsyncWriteRent, Split},
    BufResult,
};
use crate::buffers::{ReadBuffer, WriteBuffer};
use crate::socket::{SendNow, SocketIo};
use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};

#[derive(Debug)]
pub struct Stream<IO, C> {
    pub(crate) io: IO,
    pub(crate) session: C,
    r_buffer: ReadBuffer,
    w_buffer: WriteBuffer,
    /// nodepass patch: a read fills the caller's buffer with as many records' plaintext as
    /// arrived (a byte stream), instead of one record's (the default: datagram boundaries).
    fill_reads: bool,
}

impl<IO> Stream<IO, ServerConnection> {
    #[inline]
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.session.alpn_protocol().map(|s| s.to_vec())
    }
}

impl<IO> Stream<IO, ClientConnection> {
    #[inline]
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.session.alpn_protocol().map(|s| s.to_vec())
    }
}

unsafe impl<IO: Split, C> Split for Stream<IO, C> {}

impl<IO, C> Stream<IO, C> {
    pub fn new(io: IO, session: C) -> Self {
        Self {
            io,
            session,
            r_buffer: Default::default(),
            w_buffer: Default::default(),
            fill_reads: false,
        }
    }

    /// nodepass patch: let a read return the plaintext of every record already received, up
    /// to the buffer's size, instead of one record's. For a byte stream (a relayed TCP
    /// session), where record boundaries mean nothing; never for datagrams.
    pub fn set_fill_reads(&mut self, on: bool) {
        self.fill_reads = on;
    }

    pub fn into_parts(self) -> (IO, C) {
        (self.io, self.session)
    }

    pub(crate) fn map_conn<C2, F: FnOnce(C) -> C2>(self, f: F) -> Stream<IO, C2> {
        Stream {
            io: self.io,
            session: f(self.session),
            r_buffer: self.r_buffer,
            w_buffer: self.w_buffer,
            fill_reads: self.fill_reads,
        }
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent + SocketIo, C, SD: SideData> Stream<IO, C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
{
    pub(crate) async fn read_io(&mut self, splitted: bool) -> io::Result<usize> {
        let n = loop {
            match self.session.read_tls(&mut self.r_buffer) {
                Ok(n) => {
                    break n;
                }
                Err(ref err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.r_buffer.do_io(&mut self.io).await?;
                    continue;
                }
                Err(err) => return Err(err),
            }
        };

        let state = match self.session.process_new_packets() {
            Ok(state) => state,
            Err(err) => {
                // When to write_io? If we do this in read call, the UnsafeWrite may crash
                // when we impl split in an UnsafeCell way.
                // Here we choose not to do write when read.
                // User should manually shutdown it on error.
                if !splitted {
                    let _ = self.write_io().await;
                }
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        };

        if state.peer_has_closed() && self.session.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tls handshake alert",
            ));
        }

        Ok(n)
    }

    pub(crate) async fn write_io(&mut self) -> io::Result<usize> {
        // nodepass patch: send the queued records directly when the socket takes them now
        // (socket.rs); only what it refuses goes through the write buffer below.
        if !self.w_buffer.holds_bytes() {
            if let Some(fd) = self.io.socket_fd() {
                match self.session.write_tls(&mut SendNow(fd)) {
                    Ok(n) => return Ok(n),
                    Err(ref e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let n = loop {
            match self.session.write_tls(&mut self.w_buffer) {
                Ok(n) => {
                    self.w_buffer.do_io(&mut self.io).await?;
                    break n;
                }
                Err(ref err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.w_buffer.do_io(&mut self.io).await?;
                    continue;
                }
                Err(err) => return Err(err),
            }
        };

        Ok(n)
    }

    pub(crate) async fn handshake(&mut self) -> io::Result<(usize, usize)> {
        let mut wrlen = 0;
        let mut rdlen = 0;
        let mut eof = false;

        loop {
            while self.session.wants_write() && self.session.is_handshaking() {
                wrlen += self.write_io().await?;
            }
            while !eof && self.session.wants_read() && self.session.is_handshaking() {
                let n = self.read_io(false).await?;
                rdlen += n;
                if n == 0 {
                    eof = true;
                }
            }

            match (eof, self.session.is_handshaking()) {
                (true, true) => {
                    let err = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
                    return Err(err);
                }
                (false, true) => (),
                (_, false) => {
                    break;
                }
            };
        }

        // flush buffer
        while self.session.wants_write() {
            wrlen += self.write_io().await?;
        }

        Ok((rdlen, wrlen))
    }

    /// nodepass patch: wait until a read would return at once (plaintext buffered, the
    /// peer closed, or an error that the next read reports).
    async fn wait_readable(&mut self, splitted: bool) -> io::Result<()> {
        loop {
            match self.session.reader().into_first_chunk() {
                Err(ref err) if err.kind() == io::ErrorKind::WouldBlock => {}
                _ => return Ok(()),
            }
            self.read_io(splitted).await?;
        }
    }

    pub(crate) async fn read_inner<T: monoio::buf::IoBufMut>(
        &mut self,
        mut buf: T,
        splitted: bool,
    ) -> BufResult<usize, T> {
        let slice = unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
        if slice.is_empty() && self.fill_reads {
            // nodepass patch: with `fill_reads`, a read into an empty buffer waits until
            // plaintext, a close or an error is buffered (the socket read waits for
            // readiness first, `buffers.rs`), so a relay lends its copy buffer only once
            // there are bytes.
            return match self.wait_readable(splitted).await {
                Ok(()) => (Ok(0), buf),
                Err(e) => (Err(e), buf),
            };
        }
        let mut filled = 0;
        loop {
            // read from rustls to buffer
            // nodepass patch: at most one TLS record's plaintext per read (rustls keeps
            // each record's plaintext as one chunk), like Go's tls.Conn.Read, so a
            // record-per-message protocol (UDP over a TLS stream) keeps its boundaries;
            // with `fill_reads`, records until the buffer is full or the next one would
            // need a syscall.
            match read_one_record(&mut self.session.reader(), &mut slice[filled..]) {
                Ok(n) => {
                    filled += n;
                    if !self.fill_reads || n == 0 || filled == slice.len() {
                        break;
                    }
                    continue;
                }
                // we need more data, read something.
                Err(ref err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if filled > 0 && !self.r_buffer.has_bytes() {
                        break;
                    }
                }
                // Plaintext already taken goes out first; rustls and the read buffer keep
                // the error, so the next read returns it.
                Err(_) if filled > 0 => break,
                Err(e) => {
                    return (Err(e), buf);
                }
            }

            // now we need data, read something into rustls
            if let Err(e) = self.read_io(splitted).await {
                if filled > 0 {
                    break;
                }
                return (Err(e), buf);
            }
        }
        unsafe { buf.set_init(filled) };
        (Ok(filled), buf)
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent + SocketIo, C, SD: SideData + 'static> AsyncReadRent
    for Stream<IO, C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_inner(buf, false).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw_buf) => self.read(raw_buf).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent + SocketIo, C, SD: SideData + 'static> AsyncWriteRent
    for Stream<IO, C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // construct slice
        let slice = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };

        // flush rustls inner write buffer to make sure there is space for new data
        if self.session.wants_write() {
            if let Err(e) = self.write_io().await {
                return (Err(e), buf);
            }
        }

        // write slice to rustls
        let n = match self.session.writer().write(slice) {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };

        // write from rustls to connection
        while self.session.wants_write() {
            match self.write_io().await {
                Ok(0) => {
                    break;
                }
                Ok(_) => (),
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(n), buf)
    }

    // TODO: use real writev
    async fn writev<T: IoVecBuf>(&mut self, buf_vec: T) -> BufResult<usize, T> {
        let n = match unsafe { RawBuf::new_from_iovec(&buf_vec) } {
            Some(raw_buf) => self.write(raw_buf).await.0,
            None => Ok(0),
        };
        (n, buf_vec)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.session.writer().flush()?;
        while self.session.wants_write() {
            self.write_io().await?;
        }
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.session.send_close_notify();

        while self.session.wants_write() {
            self.write_io().await?;
        }
        self.io.shutdown().await
    }
}

/// nodepass patch: copy (part of) the first buffered record's plaintext into `out`.
/// Like `Read::read`: `Ok(0)` at a clean close, `WouldBlock` when nothing is buffered.
fn read_one_record(reader: &mut rustls::Reader<'_>, out: &mut [u8]) -> io::Result<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    let chunk = reader.fill_buf()?;
    let n = chunk.len().min(out.len());
    out[..n].copy_from_slice(&chunk[..n]);
    reader.consume(n);
    Ok(n)
}
