//! Where the component may listen, and the narrow WASI it gets: no
//! filesystem, no environment, no network of its own (its sockets are the
//! host's, through `net`, or TCP listeners where the operator allowed).

use std::fmt;
use std::net::SocketAddr;
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
