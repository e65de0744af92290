//! nodepass patch: the stream's raw read and write buffers, taken from a per-thread free
//! list only while a read is in flight or bytes are in them, instead of 16 KiB + 16 KiB
//! held by every stream for its life (monoio-io-wrapper's `SafeRead`/`SafeWrite`, which
//! these replace). A TLS pool connection waiting idle in the pool has no read in flight
//! (the pool watches it with epoll), so it holds neither.
//!
//! Sizes: a block holds one TLS record at its largest, so a record is never split across
//! two sends (a 16 KiB block sent every full record as 16,384 + 22 bytes: two syscalls and
//! two TCP segments per record). A read that fills its block means the peer is streaming;
//! the next read then takes a large block, several records per syscall, and drops back to
//! a record-sized one after the first short read, so a silent session's pending read holds
//! the small size.
//!
//! After a short read, a stream over a socket (`socket.rs`) waits for readiness before it
//! takes a block, then receives into it at once with a non-blocking `recv`, so a silent
//! session holds no read block either (waiting for readiness and then reading through the
//! runtime cost one more io_uring operation per short read, 8 -> 10 per small request on a
//! TLS tunnel; the direct `recv` costs a syscall instead).

use std::{cell::RefCell, fmt, io};

use monoio::{
    buf::{IoBuf, IoBufMut},
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt},
};

use crate::socket::{recv_now, SocketIo};

/// The largest TLS record on the wire (16 KiB of plaintext, TLS 1.2's 2 KiB of allowed
/// expansion, the 5-byte header), rounded up.
const RECORD_BLOCK: usize = 19 * 1024;
/// A streaming read's block, and a write's when more than one record is pending: four
/// full records per syscall (64 KiB of plaintext, the relay's largest write).
const STREAM_BLOCK: usize = 4 * RECORD_BLOCK;
/// Blocks of each size kept per thread for reuse; more are freed.
const POOL_KEEP: usize = 64;

thread_local! {
    static FREE_RECORD: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
    static FREE_STREAM: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn free_list(size: usize) -> &'static std::thread::LocalKey<RefCell<Vec<Box<[u8]>>>> {
    if size == STREAM_BLOCK {
        &FREE_STREAM
    } else {
        &FREE_RECORD
    }
}

thread_local! {
    static IN_USE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// nodepass patch: how many raw blocks this thread's TLS streams hold now (taken from the
/// free list and not given back yet): a quiet stream should hold none.
pub fn blocks_in_use() -> usize {
    IN_USE.with(|n| n.get())
}

fn take_block(size: usize) -> Box<[u8]> {
    free_list(size)
        .with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; size].into_boxed_slice())
}

fn give_block(block: Box<[u8]>) {
    free_list(block.len()).with(|f| {
        let mut free = f.borrow_mut();
        if free.len() < POOL_KEEP {
            free.push(block);
        }
    });
}

/// Bytes `block[read..write]` of a pooled block.
struct Buffer {
    read: usize,
    write: usize,
    block: Box<[u8]>,
}

/// A buffer's block goes back to the free list when the buffer drops, wherever that is (a
/// read op cancelled in flight drops its buffer when the op completes).
impl Drop for Buffer {
    fn drop(&mut self) {
        IN_USE.with(|n| n.set(n.get().saturating_sub(1)));
        give_block(std::mem::take(&mut self.block));
    }
}

impl Buffer {
    fn new(size: usize) -> Buffer {
        IN_USE.with(|n| n.set(n.get() + 1));
        Buffer {
            read: 0,
            write: 0,
            block: take_block(size),
        }
    }

    fn len(&self) -> usize {
        self.write - self.read
    }

    fn advance(&mut self, n: usize) {
        debug_assert!(self.read + n <= self.write);
        self.read += n;
        if self.read == self.write {
            self.read = 0;
            self.write = 0;
        }
    }
}

// SAFETY: `read_ptr` points into the owned block at `read`, and `bytes_init` counts the
// initialised bytes after it (`write - read`, both within the block).
unsafe impl IoBuf for Buffer {
    fn read_ptr(&self) -> *const u8 {
        self.block[self.read..].as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.write - self.read
    }
}

// SAFETY: `write_ptr` points into the owned block at `write`, `bytes_total` is the room
// left after it, and `set_init` only moves `write` forward within that room.
unsafe impl IoBufMut for Buffer {
    fn write_ptr(&mut self) -> *mut u8 {
        self.block[self.write..].as_mut_ptr()
    }

    fn bytes_total(&mut self) -> usize {
        self.block.len() - self.write
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.write += pos;
    }
}

#[derive(Debug)]
enum ReadStatus {
    Eof,
    Err(io::Error),
    Ok,
}

/// The raw read side: what the socket gave and rustls has not taken yet.
pub struct ReadBuffer {
    buffer: Option<Buffer>,
    status: ReadStatus,
    /// The last read filled its block: the peer is streaming, read in large blocks.
    streaming: bool,
}

impl fmt::Debug for ReadBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBuffer")
            .field("status", &self.status)
            .field("held", &self.buffer.is_some())
            .finish()
    }
}

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer {
            buffer: None,
            status: ReadStatus::Ok,
            streaming: false,
        }
    }
}

impl ReadBuffer {
    /// Read from `io` into the buffer (rustls then takes it with `io::Read`); the bytes
    /// read, 0 at EOF. Returns at once when bytes are still buffered.
    ///
    /// After a short read (the peer is not streaming), a socket is first waited on for
    /// readiness and only then given a block, received into at once: a quiet stream holds
    /// no block while it waits. A streaming one reads through the runtime into a large block.
    pub async fn do_io<IO: AsyncReadRent + SocketIo>(&mut self, io: &mut IO) -> io::Result<usize> {
        if let Some(b) = &self.buffer {
            if b.len() > 0 {
                return Ok(b.len());
            }
        }
        let size = if self.streaming { STREAM_BLOCK } else { RECORD_BLOCK };
        if let Some(fd) = io.socket_fd().filter(|_| !self.streaming) {
            if let Err(e) = io.readable().await {
                return self.finish(Err(e));
            }
            let mut buffer = self.block_of(size);
            match recv_now(fd, &mut buffer.block[buffer.write..]) {
                // Readiness was stale (or a signal came): the runtime's read waits properly.
                Err(ref e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    self.buffer = Some(buffer);
                }
                got => {
                    if let Ok(n) = got {
                        buffer.write += n;
                    }
                    self.streaming = matches!(got, Ok(n) if n == size);
                    self.buffer = Some(buffer);
                    return self.finish(got);
                }
            }
        }
        let buffer = self.block_of(size);
        let (result, buffer) = io.read(buffer).await;
        self.streaming = matches!(result, Ok(n) if n == size);
        self.buffer = Some(buffer);
        self.finish(result)
    }

    /// The held buffer if its block is `size` bytes, else a fresh one of that size (the held
    /// one, empty here, goes back to the pool).
    fn block_of(&mut self, size: usize) -> Buffer {
        match self.buffer.take() {
            Some(b) if b.block.len() == size => b,
            _ => Buffer::new(size),
        }
    }

    /// Record a read's outcome (the bytes are in `self.buffer` already).
    fn finish(&mut self, result: io::Result<usize>) -> io::Result<usize> {
        match result {
            Ok(0) => {
                self.release();
                self.status = ReadStatus::Eof;
                Ok(0)
            }
            Ok(n) => {
                self.status = ReadStatus::Ok;
                Ok(n)
            }
            Err(e) => {
                self.release();
                let kind = e.kind();
                self.status = ReadStatus::Err(e);
                Err(kind.into())
            }
        }
    }

    /// Whether bytes read from the socket wait here for rustls (so feeding rustls more
    /// needs no syscall).
    pub fn has_bytes(&self) -> bool {
        self.buffer.as_ref().is_some_and(|b| b.len() > 0)
    }

    fn release(&mut self) {
        self.buffer = None;
    }
}

impl io::Read for ReadBuffer {
    /// Copy buffered bytes out; `WouldBlock` when none are left (call `do_io`).
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(buffer) = self.buffer.as_mut().filter(|b| b.len() > 0) else {
            return match std::mem::replace(&mut self.status, ReadStatus::Ok) {
                ReadStatus::Eof => Ok(0),
                ReadStatus::Err(e) => Err(e),
                ReadStatus::Ok => Err(io::ErrorKind::WouldBlock.into()),
            };
        };
        let n = buffer.len().min(out.len());
        out[..n].copy_from_slice(&buffer.block[buffer.read..buffer.read + n]);
        buffer.advance(n);
        if buffer.len() == 0 {
            self.release();
        }
        Ok(n)
    }
}

#[derive(Debug)]
enum WriteStatus {
    Err(io::Error),
    Ok,
}

/// The raw write side: TLS records rustls produced, not yet written to the socket.
pub struct WriteBuffer {
    buffer: Option<Buffer>,
    status: WriteStatus,
}

impl fmt::Debug for WriteBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBuffer")
            .field("status", &self.status)
            .field("held", &self.buffer.is_some())
            .finish()
    }
}

impl Default for WriteBuffer {
    fn default() -> Self {
        WriteBuffer {
            buffer: None,
            status: WriteStatus::Ok,
        }
    }
}

impl WriteBuffer {
    /// nodepass patch: records wait here for the socket (so a direct send would reorder).
    pub fn holds_bytes(&self) -> bool {
        self.buffer.as_ref().is_some_and(|b| b.len() > 0)
    }

    /// Write everything buffered to `io` (the buffer goes back to the pool once empty);
    /// the bytes written.
    pub async fn do_io<IO: AsyncWriteRent>(&mut self, io: &mut IO) -> io::Result<usize> {
        // An empty buffer goes back to the pool as it drops here.
        let Some(buffer) = self.buffer.take().filter(|b| b.len() > 0) else {
            return Ok(0);
        };
        let (result, mut buffer) = io.write_all(buffer).await;
        match result {
            Ok(n) => {
                buffer.advance(n);
                if buffer.len() > 0 {
                    self.buffer = Some(buffer);
                }
                Ok(n)
            }
            Err(e) => {
                self.buffer = Some(buffer);
                let kind = e.kind();
                self.status = WriteStatus::Err(e);
                Err(kind.into())
            }
        }
    }
}

impl io::Write for WriteBuffer {
    /// Copy into the buffer; `WouldBlock` when it is full (call `do_io`).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let WriteStatus::Err(e) = std::mem::replace(&mut self.status, WriteStatus::Ok) {
            return Err(e);
        }
        let buffer = self.buffer.get_or_insert_with(|| Buffer::new(RECORD_BLOCK));
        let room = buffer.block.len() - buffer.write;
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = data.len().min(room);
        buffer.block[buffer.write..buffer.write + n].copy_from_slice(&data[..n]);
        buffer.write += n;
        Ok(n)
    }

    /// rustls hands every pending record at once: take as many as fit, so they leave in
    /// one send.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.buffer.is_none() {
            let pending: usize = bufs.iter().map(|b| b.len()).sum();
            let size = if pending > RECORD_BLOCK { STREAM_BLOCK } else { RECORD_BLOCK };
            self.buffer = Some(Buffer::new(size));
        }
        let mut total = 0;
        for data in bufs.iter().filter(|b| !b.is_empty()) {
            match self.write(data) {
                Ok(n) => {
                    total += n;
                    if n < data.len() {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let WriteStatus::Err(e) = std::mem::replace(&mut self.status, WriteStatus::Ok) {
            return Err(e);
        }
        match &self.buffer {
            Some(b) if b.len() > 0 => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(()),
        }
    }
}

