//! The PROXY protocol: a load balancer in front of wsbox (HAProxy, nginx's
//! stream module, AWS's NLB) starts each connection with a header that
//! names the client, version 1 (text) or 2 (binary); `ppp` parses both.
//!
//! Only the operator's trusted proxies may send one: from them the header is
//! required, and from any other peer a connection that starts with one is
//! refused, so that no client can claim another's address. The header is
//! read before the guest hears of the connection: the app, the per-address
//! admission limits, the logs and the metrics all see the client.

use ipnet::IpNet;
use ppp::{PartialResult, v1, v2};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The longest header read: a v1 header is at most 107 bytes, and the TLVs
/// proxies add to a v2 header (TLS facts, a connection id) stay far below.
pub const MAX_HEADER: usize = 4096;

/// How long a connection may take to send its header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, its line end included (the protocol's own limit).
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// The proxies the operator trusts to name their clients: in a PROXY
/// header at the start of each connection (`header`), or else in the
/// request's `Forwarded` / `X-Forwarded-For` (read by the guest).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    trusted: Arc<[IpNet]>,
    header: bool,
}

impl TrustedProxies {
    /// Peers in `trusted` name their clients, in a PROXY header if `header`.
    pub fn trusting(trusted: impl IntoIterator<Item = IpNet>, header: bool) -> Self {
        Self { trusted: trusted.into_iter().collect(), header }
    }

    /// Whether connections are looked at for a PROXY header.
    pub fn reads_header(&self) -> bool {
        self.header && !self.trusted.is_empty()
    }

    /// Whether `peer` names its client in its requests' `Forwarded` /
    /// `X-Forwarded-For` headers: a trusted proxy, when PROXY headers are off.
    pub fn forwards(&self, peer: IpAddr) -> bool {
        !self.header && self.trusts(peer)
    }

    /// Whether `peer` is one of the trusted proxies (an IPv4 peer on an
    /// IPv6 socket counts as its IPv4 address).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }
}

/// Parses `--trusted-proxy`: a network (`10.0.0.0/8`, `fd00::/8`) or one
/// address.
pub fn parse_trusted(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{text}' is neither an address nor a network such as 10.0.0.0/8"))
}

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub enum Preamble {
    /// Too few bytes to tell.
    Incomplete,
    /// A header of `len` bytes. `client` and `server` are the addresses it
    /// names; `None` for the proxy's own connections (a v2 `LOCAL` command,
    /// v1 `UNKNOWN`, or not TCP): the socket's addresses stand.
    Header { len: usize, client: Option<SocketAddr>, server: Option<SocketAddr> },
    /// No header: what came is the client's own.
    Absent,
    /// A header that cannot be read, and why.
    Malformed(String),
}

/// Reads the start of a connection.
pub fn read_preamble(bytes: &[u8]) -> Preamble {
    let preamble = if starts_with_part_of(bytes, V2_SIGNATURE) {
        match v2::Header::try_from(bytes) {
            // A datagram's addresses say nothing of this TCP connection.
            Ok(header) if header.command == v2::Command::Proxy && header.protocol == v2::Protocol::Datagram => {
                Preamble::Malformed("PROXY v2: a datagram header on a stream connection".to_string())
            }
            Ok(header) => {
                let (client, server) = match (header.command, header.addresses) {
                    (v2::Command::Proxy, v2::Addresses::IPv4(a)) => v4(a),
                    (v2::Command::Proxy, v2::Addresses::IPv6(a)) => v6(a),
                    _ => (None, None),
                };
                Preamble::Header { len: header.len(), client, server }
            }
            Err(e) if e.is_incomplete() => Preamble::Incomplete,
            Err(e) => Preamble::Malformed(format!("PROXY v2: {e}")),
        }
    } else if starts_with_part_of(bytes, V1_PREFIX) {
        // A v1 header is one line of at most 107 bytes: read only whole
        // lines (a field cut short looks malformed, not incomplete).
        let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return match bytes.len() {
                ..V1_MAX => Preamble::Incomplete,
                _ => Preamble::Malformed(format!("PROXY v1: no line end in the first {V1_MAX} bytes")),
            };
        };
        // The line is whole: whatever is wrong with it stays wrong.
        match v1::Header::try_from(&bytes[..end + 2]) {
            Ok(header) => {
                let (client, server) = match header.addresses {
                    v1::Addresses::Tcp4(a) => v4(a),
                    v1::Addresses::Tcp6(a) => v6(a),
                    v1::Addresses::Unknown => (None, None),
                };
                Preamble::Header { len: header.header.len(), client, server }
            }
            Err(e) => Preamble::Malformed(format!("PROXY v1: {e}")),
        }
    } else {
        return Preamble::Absent;
    };
    match preamble {
        Preamble::Incomplete if bytes.len() >= MAX_HEADER => {
            Preamble::Malformed(format!("no complete header in the first {MAX_HEADER} bytes"))
        }
        preamble => preamble,
    }
}

/// The client and the server a header names (both versions share the
/// address types).
type Named = (Option<SocketAddr>, Option<SocketAddr>);

fn v4(a: v1::IPv4) -> Named {
    (Some((a.source_address, a.source_port).into()), Some((a.destination_address, a.destination_port).into()))
}

fn v6(a: v1::IPv6) -> Named {
    (Some((a.source_address, a.source_port).into()), Some((a.destination_address, a.destination_port).into()))
}

/// Whether `bytes` and `signature` agree as far as both go.
fn starts_with_part_of(bytes: &[u8], signature: &[u8]) -> bool {
    let n = bytes.len().min(signature.len());
    bytes[..n] == signature[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend_from_slice(&[0x20 | command, family]);
        header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    #[test]
    fn a_v1_header_names_the_client_and_the_rest_is_the_clients() {
        let input = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 443\r\nGET / HTTP/1.1\r\n";
        let len = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 443\r\n".len();
        let client = Some("203.0.113.7:4242".parse().unwrap());
        let server = Some("192.0.2.1:443".parse().unwrap());
        assert_eq!(read_preamble(input), Preamble::Header { len, client, server });
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n";
        let client = Some("[2001:db8::7]:4242".parse().unwrap());
        assert!(matches!(read_preamble(v6), Preamble::Header { len, client: c, .. } if len == v6.len() && c == client));
        let unknown = b"PROXY UNKNOWN\r\n\x16\x03\x01";
        assert_eq!(read_preamble(unknown), Preamble::Header { len: 15, client: None, server: None });
    }

    #[test]
    fn a_v2_header_names_the_client_and_local_keeps_the_sockets_addresses() {
        let addresses = [203, 0, 113, 7, 192, 0, 2, 1, 0x10, 0x92, 0x01, 0xbb];
        let mut input = v2_header(0x1, 0x11, &addresses);
        let len = input.len();
        input.extend_from_slice(b"GET /");
        let client = Some("203.0.113.7:4242".parse().unwrap());
        let server = Some("192.0.2.1:443".parse().unwrap());
        assert_eq!(read_preamble(&input), Preamble::Header { len, client, server });
        let local = v2_header(0x0, 0x00, &[]);
        assert_eq!(read_preamble(&local), Preamble::Header { len: 16, client: None, server: None });
    }

    #[test]
    fn a_header_in_pieces_is_incomplete_until_it_is_whole() {
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 443\r\n";
        let v2 = v2_header(0x1, 0x11, &[203, 0, 113, 7, 192, 0, 2, 1, 0x10, 0x92, 0x01, 0xbb]);
        for whole in [&v1[..], &v2[..]] {
            for cut in 0..whole.len() {
                assert_eq!(read_preamble(&whole[..cut]), Preamble::Incomplete, "{cut} bytes of {whole:?}");
            }
            assert!(matches!(read_preamble(whole), Preamble::Header { .. }));
        }
    }

    #[test]
    fn what_clients_send_first_is_no_header() {
        for first in [&b"GET / HTTP/1.1\r\n"[..], &[0x16, 0x03, 0x01, 0x02, 0x00][..], b"\r\n\r\nx", b"PROXX"] {
            assert_eq!(read_preamble(first), Preamble::Absent, "{first:?}");
        }
    }

    #[test]
    fn broken_and_endless_headers_are_malformed() {
        for broken in [
            &b"PROXY TCP4 999.0.113.7 192.0.2.1 4242 443\r\n"[..],
            b"PROXY SCTP 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\nGET / HTTP/1.1\r\n",
        ] {
            assert!(matches!(read_preamble(broken), Preamble::Malformed(_)), "{broken:?}");
        }
        let datagram = v2_header(0x1, 0x12, &[203, 0, 113, 7, 192, 0, 2, 1, 0x10, 0x92, 0x01, 0xbb]);
        assert!(matches!(read_preamble(&datagram), Preamble::Malformed(m) if m.contains("datagram")));
        let mut bad_version = v2_header(0x1, 0x11, &[0; 12]);
        bad_version[12] = 0x31;
        assert!(matches!(read_preamble(&bad_version), Preamble::Malformed(_)));
        let mut endless = V2_SIGNATURE.to_vec();
        endless.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        endless.resize(MAX_HEADER, 0);
        assert!(matches!(read_preamble(&endless), Preamble::Malformed(m) if m.contains("4096")));
        let endless_line = [&b"PROXY "[..], &[b'x'; 101]].concat();
        assert!(matches!(read_preamble(&endless_line), Preamble::Malformed(m) if m.contains("107")));
    }

    #[test]
    fn trust_is_by_network_or_address_and_sees_through_mapped_ipv4() {
        let nets = ["10.0.0.0/8", "192.0.2.5", "fd00::/8"].map(|t| parse_trusted(t).unwrap());
        let proxies = TrustedProxies::trusting(nets, true);
        assert!(proxies.reads_header());
        for trusted in ["10.1.2.3", "192.0.2.5", "fd12::1", "::ffff:10.9.9.9"] {
            assert!(proxies.trusts(trusted.parse().unwrap()), "{trusted}");
        }
        for other in ["192.0.2.6", "127.0.0.1", "2001:db8::1"] {
            assert!(!proxies.trusts(other.parse().unwrap()), "{other}");
        }
        assert!(!TrustedProxies::default().reads_header());
        assert!(parse_trusted("10.0.0.0/33").unwrap_err().contains("neither"));
    }
}
