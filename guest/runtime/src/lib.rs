//! The server-level state machine behind wsbox's Qt-shaped API, shared by
//! every I/O binding: servers and their pending queues, sockets and their
//! timers, the upgrade policy, and the mapping from the protocol core's
//! events to Qt's signals.
//!
//! Sans-io like the core beneath it: a binding implements [`Net`] (listen,
//! one [`exchange`](Net::exchange) per turn, the clock) and the runtime
//! never reads time or touches a socket otherwise, so its tests drive it
//! through a scripted `Net`.
//!
//! One [`Runtime::turn`]: emit deferred signals, hand what every socket
//! queued to the transport, wait for it (up to the app's timeout or the
//! next deadline), feed what arrived to the cores, fire due timers.
//!
//! - [`net`]: the [`Net`] trait and the batches it exchanges.
//! - [`signals`]: Qt's signals ([`AppEvent`]) and where they go ([`Sink`]).
//! - `server`, `socket`, `timers`, `topics`: the state the runtime keeps.
//! - `runtime`: the app's calls, the turn, the upgrade decision, publishing.

mod forwarded;
pub mod net;
mod runtime;
mod server;
pub mod signals;
mod socket;
mod timers;
mod topics;

pub use net::{
    AcceptFailed, Admission, InBatch, ListenErrorKind, ListenerInfo, Net, Opened, OutBatch, Publication, TlsFailed,
    TlsInfo,
};
pub use runtime::Runtime;
pub use server::{DEFAULT_MAX_HANDSHAKING, DEFAULT_MAX_PENDING, Server};
pub use signals::{AppEvent, Sink};
pub use socket::{DEFAULT_MAX_SEND_BUFFER, SEND_BUFFER_RANGE, Sent, Socket};
pub use topics::{MAX_TOPIC_LEN, MAX_TOPICS_PER_SOCKET, TopicCounts, valid_topic};
