//! The shared flat batch that connection tasks read into and the guest's
//! `exchange` takes once per turn.

use super::conn::Conn;
use super::{CONN_SHARE, TURN_CAP};
use crate::bindings::net;
use bytes::BufMut;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Largest single read into the batch.
const READ_CHUNK: usize = 64 * 1024;

/// State shared by the driver (the guest's `exchange`) and the tasks.
#[derive(Default)]
pub struct Shared {
    /// Every open connection, by id.
    pub conns: Mutex<HashMap<u32, Arc<Conn>>>,
    inbox: Mutex<Inbox>,
    /// Signalled when the inbox goes from empty to not empty.
    ready: Notify,
    /// Set by [`Shared::interrupt`]: the current wait ends without input.
    interrupted: AtomicBool,
    next_conn: AtomicU32,
}

/// What arrived since the last turn.
#[derive(Default)]
struct Inbox {
    opened: Vec<net::Opened>,
    conns: Vec<u32>,
    ends: Vec<u32>,
    data: Vec<u8>,
    eof: Vec<u32>,
    gone: Vec<u32>,
    /// Counts turns, so each connection's share restarts every turn.
    epoch: u32,
    /// Connections that stopped reading because this turn is full.
    blocked: Vec<Arc<Conn>>,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.conns.is_empty() && self.eof.is_empty() && self.gone.is_empty()
    }
}

/// How a read attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has nothing more for now.
    WouldBlock,
    /// This turn has no more room for the connection; wait for the next.
    Blocked,
    /// The peer finished sending.
    Eof,
    /// The socket failed.
    Failed,
}

impl Shared {
    pub fn next_conn_id(&self) -> u32 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn push(&self, f: impl FnOnce(&mut Inbox)) {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        let was_empty = inbox.is_empty();
        f(&mut inbox);
        drop(inbox);
        if was_empty {
            self.ready.notify_one();
        }
    }

    pub fn push_opened(&self, opened: net::Opened) {
        self.push(|i| i.opened.push(opened));
    }

    pub fn push_gone(&self, id: u32) {
        self.push(|i| i.gone.push(id));
    }

    /// Reads from `conn` straight into the batch until the socket would
    /// block, the connection's share of this turn is used, or the turn is full.
    pub fn read_from(&self, conn: &Arc<Conn>) -> ReadOutcome {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        let was_empty = inbox.is_empty();
        let outcome = loop {
            let used = conn.turn_share_used(inbox.epoch);
            let room = TURN_CAP.saturating_sub(inbox.data.len()).min(CONN_SHARE.saturating_sub(used)).min(READ_CHUNK);
            if room == 0 {
                inbox.blocked.push(Arc::clone(conn));
                break ReadOutcome::Blocked;
            }
            inbox.data.reserve(room);
            let before = inbox.data.len();
            let result = conn.stream().try_read_buf(&mut (&mut inbox.data).limit(room));
            match result {
                Ok(0) => {
                    inbox.eof.push(conn.id);
                    break ReadOutcome::Eof;
                }
                Ok(n) => {
                    let end = inbox.data.len() as u32;
                    debug_assert_eq!(inbox.data.len(), before + n);
                    if inbox.conns.last() == Some(&conn.id) {
                        *inbox.ends.last_mut().expect("ends follow conns") = end;
                    } else {
                        inbox.conns.push(conn.id);
                        inbox.ends.push(end);
                    }
                    conn.add_turn_share(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break ReadOutcome::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break ReadOutcome::Failed,
            }
        };
        let now_ready = was_empty && !inbox.is_empty();
        drop(inbox);
        if now_ready {
            self.ready.notify_one();
        }
        outcome
    }

    /// Waits until something arrived or `timeout` passed.
    pub async fn wait_for_input(&self, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.inbox.lock().expect("inbox lock").is_empty() || self.interrupted.swap(false, Ordering::AcqRel) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Ends the current (or next) wait for input at once, so the app gets its
    /// turn back (a shutdown request, for instance).
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Hands the batch over and starts the next turn.
    pub fn take_turn(&self) -> net::Incoming {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        inbox.epoch = inbox.epoch.wrapping_add(1);
        let blocked = std::mem::take(&mut inbox.blocked);
        let incoming = net::Incoming {
            opened: std::mem::take(&mut inbox.opened),
            conns: std::mem::take(&mut inbox.conns),
            ends: std::mem::take(&mut inbox.ends),
            data: std::mem::take(&mut inbox.data),
            eof: std::mem::take(&mut inbox.eof),
            gone: std::mem::take(&mut inbox.gone),
        };
        drop(inbox);
        for conn in blocked {
            conn.wake();
        }
        incoming
    }
}
