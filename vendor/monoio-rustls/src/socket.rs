//! nodepass patch: direct, non-blocking socket calls beside the runtime's.
//!
//! Sends: TLS records go from rustls's queue straight to the socket, by one non-blocking
//! `sendmsg` of every queued record, when the socket takes them at once (it almost always
//! does: a relayed stream writes after a read, and the kernel's send buffer is far larger
//! than a write). Only what the socket refuses is copied into the stream's write buffer and
//! written by the runtime, which waits. Before this, every record was copied into that buffer
//! first: one memcpy per byte sent, and a 19 or 76 KiB block taken per write.
//!
//! Receives: after a short read the stream waits until its socket is readable and only then
//! takes a read block and receives into it at once (`recv_now`), so a quiet TLS session
//! lends no block to a pending read (see `buffers.rs`).

use std::{
    future::Future,
    io,
    os::fd::{AsRawFd, BorrowedFd, RawFd},
};

/// An IO a TLS stream can reach directly: a socket (`socket_fd` `None`: always through the
/// runtime).
pub trait SocketIo {
    /// The socket, for non-blocking sends and receives beside the runtime's.
    fn socket_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Return once the socket is readable (bytes, EOF or an error); only called when
    /// `socket_fd` is `Some`.
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
}

impl SocketIo for monoio::net::TcpStream {
    fn socket_fd(&self) -> Option<BorrowedFd<'_>> {
        // SAFETY: the fd is open for as long as `self` (which the borrow ties it to) lives.
        Some(unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) })
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        monoio::net::TcpStream::readable(self, false)
    }
}

/// One non-blocking `recv` into `buf` (`MSG_DONTWAIT`, whatever the socket's mode).
pub(crate) fn recv_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes; `fd` is borrowed, so
    // open for the call.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `io::Write` over one socket, never blocking: `WouldBlock` when the socket takes nothing
/// now (`MSG_DONTWAIT` whatever the socket's mode, `MSG_NOSIGNAL`: a closed peer is
/// `EPIPE`, not a signal).
pub(crate) struct SendNow<'a>(pub(crate) BorrowedFd<'a>);

/// rustls hands at most 64 chunks per vectored write.
const MAX_IOVECS: usize = 64;

impl SendNow<'_> {
    fn sendmsg(fd: RawFd, iov: &mut [libc::iovec]) -> io::Result<usize> {
        // SAFETY: a zeroed msghdr is valid (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: `msg` points at `iov.len()` iovecs, each describing a live, readable
        // slice that outlives the call; `fd` is borrowed, so open for the call.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl io::Write for SendNow<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        let mut n = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()).take(MAX_IOVECS) {
            iov[n] = libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        Self::sendmsg(self.0.as_raw_fd(), &mut iov[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
