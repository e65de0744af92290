//! A worker's pool of splice pipes: reused across connections so a new connection costs
//! no `pipe2` and no `F_SETPIPE_SZ` once the pool is warm.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Pipe capacity we ask for: large chunks mean fewer splice calls per byte.
pub const PIPE_SIZE: usize = 256 * 1024;
/// Pipes kept for reuse per worker; beyond this a finished connection's pipe is closed.
const POOL_MAX: usize = 512;
/// Pipes a quiet worker keeps (see [`PipePool::trim`]).
pub const QUIET_KEEP: usize = 4;

/// One pipe (read end, write end) and how many bytes sit in it.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes spliced in and not yet spliced out.
    pub buffered: usize,
    /// The capacity the kernel granted.
    pub capacity: usize,
}

impl Pipe {
    /// The read end.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The write end.
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }
}

/// Size of the worker's scratch buffer for small reads (see `relay::splice_one_way`).
pub const SCRATCH_SIZE: usize = 16 * 1024;

/// Reusable empty pipes of one worker, and its scratch buffer for small messages.
pub struct PipePool {
    free: RefCell<Vec<Pipe>>,
    /// Pipes taken since the last [`PipePool::trim`].
    taken: std::cell::Cell<usize>,
    /// Shared by every relay on the worker: only used between two syscalls, never across
    /// an `.await`, so one buffer serves all connections.
    pub scratch: RefCell<Box<[u8]>>,
}

impl Default for PipePool {
    fn default() -> Self {
        PipePool {
            free: RefCell::default(),
            taken: std::cell::Cell::new(0),
            scratch: RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice()),
        }
    }
}

impl PipePool {
    /// An empty pipe from the pool, or a new one.
    pub fn take(&self) -> io::Result<Pipe> {
        self.taken.set(self.taken.get() + 1);
        if let Some(p) = self.free.borrow_mut().pop() {
            return Ok(p);
        }
        let (read, write) = crate::sys::pipe()?;
        // A smaller grant (pipe-max-size, user pipe quota) still works, only slower.
        let capacity = crate::sys::set_pipe_size(write.as_fd(), PIPE_SIZE).unwrap_or(64 * 1024);
        Ok(Pipe {
            read,
            write,
            buffered: 0,
            capacity,
        })
    }

    /// Called periodically: when no pipe was taken since the last call, close all but
    /// [`QUIET_KEEP`] cached pipes, so a burst of connections does not hold two descriptors
    /// per pipe for the rest of the process's life. Returns how many were closed.
    pub fn trim(&self) -> usize {
        if self.taken.replace(0) > 0 {
            return 0;
        }
        let mut free = self.free.borrow_mut();
        let extra = free.len().saturating_sub(QUIET_KEEP);
        free.truncate(QUIET_KEEP);
        extra
    }

    /// Give a pipe back; one that still holds bytes is closed, never reused.
    pub fn give_back(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if pipe.buffered == 0 && free.len() < POOL_MAX {
            free.push(pipe);
        }
    }
}
