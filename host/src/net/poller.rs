//! The event loop's readiness source: one `mio::Poll` (epoll) over every
//! listener and connection of an instance, itself registered with tokio as
//! one file descriptor. A turn asks it once for every socket that became
//! ready, instead of waking a task per connection.

use std::io;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Events taken from the poll at a time.
const EVENTS: usize = 1024;

pub struct Poller {
    fd: AsyncFd<mio::Poll>,
    events: mio::Events,
}

impl Poller {
    /// A new poll, registered with the current tokio runtime.
    pub fn new() -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        // SAFETY: a `mio::Poll` owns its epoll descriptor, keeps it open
        // until dropped and always returns it from `as_raw_fd`.
        let fd = unsafe { AsyncFd::register_with_interest(poll, Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(Self { fd, events: mio::Events::with_capacity(EVENTS) })
    }

    pub fn registry(&self) -> &mio::Registry {
        self.fd.get_ref().registry()
    }

    /// Takes the readiness there is now into [`Poller::events`], without
    /// waiting. True when the buffer filled (there may be more: ask again).
    /// Always asks the poll itself: tokio learns of new readiness only when
    /// its driver runs, which a busy loop does not wait for.
    pub fn poll_now(&mut self) -> io::Result<bool> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.fd.poll_read_ready_mut(&mut cx) {
            Poll::Ready(Ok(mut guard)) => {
                poll_ready(guard.get_inner_mut(), &mut self.events)?;
                if self.events.is_empty() {
                    // Nothing there: the next wait parks at once instead
                    // of asking the poll again.
                    guard.clear_ready();
                }
            }
            _ => poll_ready(self.fd.get_mut(), &mut self.events)?,
        }
        Ok(self.events_full())
    }

    /// Waits until some socket is ready and takes its readiness into
    /// [`Poller::events`]. Cancel-safe: events are taken only after the
    /// wait, without awaiting again.
    pub async fn ready(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            poll_ready(guard.get_inner_mut(), &mut self.events)?;
            if !self.events.is_empty() {
                // The poll stays marked ready: the next look clears it when
                // nothing is there.
                return Ok(());
            }
            // Nothing there: wait for the next edge (tokio keeps an edge
            // that came in meanwhile, so none is lost).
            guard.clear_ready();
        }
    }

    /// Whether the last take filled the event buffer (there may be more).
    pub fn events_full(&self) -> bool {
        self.events.iter().count() == EVENTS
    }

    /// The readiness the last [`Poller::poll_now`] or [`Poller::ready`] took.
    pub fn events(&self) -> &mio::Events {
        &self.events
    }
}

fn poll_ready(poll: &mut mio::Poll, events: &mut mio::Events) -> io::Result<()> {
    match poll.poll(events, Some(Duration::ZERO)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        other => other,
    }
}
