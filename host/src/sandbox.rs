//! Policy: what the host lets the component do. The component gets no
//! filesystem, no environment, no network of its own (its sockets are the
//! host's, through `net`), and may listen only where the operator allowed.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// The addresses the component may listen on. Port 0 in an allowed address
/// lets the component listen on any port of that IP.
#[derive(Clone, Debug)]
pub struct ListenPolicy {
    allowed: Vec<SocketAddr>,
}

impl ListenPolicy {
    /// Allows exactly these addresses.
    pub fn new(allowed: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self { allowed: allowed.into_iter().collect() }
    }

    /// Whether `addr` may be listened on.
    pub fn allows(&self, addr: SocketAddr) -> bool {
        self.allowed.iter().any(|a| a.ip() == addr.ip() && (a.port() == 0 || a.port() == addr.port()))
    }
}

impl fmt::Display for ListenPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

/// Growth of the guest's linear memory past its size at start after which
/// an instance that holds no connection is replaced by a fresh one (linear
/// memory never shrinks: without this, one spike would pin its memory for
/// the life of the instance).
pub const RECYCLE_GROWTH: usize = 16 * 1024 * 1024;

/// How much the guest may take before the host stops it. A guest that
/// passes a limit traps; the host logs why and starts a fresh instance.
#[derive(Clone, Copy, Debug)]
pub struct SandboxLimits {
    /// Largest linear memory the guest may grow to, in bytes. Default 1 GiB:
    /// room for several maximal (64 MiB) messages in flight, far from what a
    /// host should lose to one tenant.
    pub max_memory: usize,
    /// Longest the guest may run without returning or waiting (one call,
    /// one stretch between host calls). Default 2 s: a turn of a full 1 MiB
    /// batch takes milliseconds, so only a guest stuck in a loop gets there.
    pub max_run: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { max_memory: 1 << 30, max_run: Duration::from_secs(2) }
    }
}

/// The narrowest WASI the component needs: clocks and random (std uses
/// them), stderr for panic messages; nothing else.
pub fn wasi_ctx() -> WasiCtx {
    WasiCtxBuilder::new().inherit_stderr().build()
}

/// [`wasi_ctx`] plus TCP for a component of the WASI binding: it may bind
/// and listen only where `policy` allows, accept any peer, and nothing else
/// (no outgoing connections, no UDP, no name lookups).
pub fn wasi_ctx_with_sockets(policy: &ListenPolicy) -> WasiCtx {
    let policy = policy.clone();
    WasiCtxBuilder::new()
        .inherit_stderr()
        .allow_tcp(true)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(move |addr, use_| {
            let allowed = listen_only(&policy, addr, use_);
            Box::pin(async move { allowed })
        })
        .build()
}

/// For an app component: its command line, stdout and stderr, and TCP as
/// for [`wasi_ctx_with_sockets`] when it brings its own sockets (`policy`).
pub fn wasi_ctx_for_app(args: &[String], policy: Option<&ListenPolicy>) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder.inherit_stdout().inherit_stderr().args(args);
    if let Some(policy) = policy {
        let policy = policy.clone();
        builder.allow_tcp(true).allow_udp(false).allow_ip_name_lookup(false).socket_addr_check(move |addr, use_| {
            let allowed = listen_only(&policy, addr, use_);
            Box::pin(async move { allowed })
        });
    }
    builder.build()
}

/// Binding and listening where `policy` allows, accepting anyone; nothing else.
fn listen_only(policy: &ListenPolicy, addr: SocketAddr, use_: SocketAddrUse) -> bool {
    match use_ {
        SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => policy.allows(addr),
        SocketAddrUse::TcpAccept => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowed_ip_and_port_pass() {
        let policy = ListenPolicy::new([
            "127.0.0.1:1234".parse().unwrap(),
            "::1:0".parse::<SocketAddr>().unwrap_or("[::1]:0".parse().unwrap()),
        ]);
        assert!(policy.allows("127.0.0.1:1234".parse().unwrap()));
        assert!(!policy.allows("127.0.0.1:1235".parse().unwrap()));
        assert!(!policy.allows("0.0.0.0:1234".parse().unwrap()));
        assert!(policy.allows("[::1]:4000".parse().unwrap()));
    }
}
