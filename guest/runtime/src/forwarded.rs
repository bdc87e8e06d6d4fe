//! The client a trusted proxy names in the upgrade request: `Forwarded`
//! (RFC 7239) or, without it, `X-Forwarded-For`. Each proxy appends the
//! address it received the request from, so only the last entry is the
//! trusted proxy's own word; earlier ones are whatever the client sent and
//! are never read.

use std::net::{IpAddr, SocketAddr};
use wsbox_core::handshake::Request;

/// The client's address (and port, when the proxy gave one) named by the
/// last entry of the request's `Forwarded` header, or else of its
/// `X-Forwarded-For`; `None` when the entry is absent or not an address
/// (`unknown`, an obfuscated name).
pub(crate) fn client(request: &Request) -> Option<(IpAddr, Option<u16>)> {
    if let Some(element) = last_entry(request, "forwarded") {
        let value = element.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim().eq_ignore_ascii_case("for").then_some(value)
        })?;
        return node(value);
    }
    node(last_entry(request, "x-forwarded-for")?)
}

/// The last comma-separated entry over every `name` header line.
fn last_entry<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    let value = request.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())?;
    value.rsplit(',').next().map(str::trim).filter(|entry| !entry.is_empty())
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]:4711`, quoted or not.
fn node(value: &str) -> Option<(IpAddr, Option<u16>)> {
    let value = value.trim().trim_matches('"');
    if let Ok(address) = value.parse::<SocketAddr>() {
        return Some((address.ip(), Some(address.port())));
    }
    let bare = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    bare.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            target: "/".into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            host: "x".into(),
            key: String::new(),
            origin: String::new(),
            subprotocols: Vec::new(),
            extensions: Vec::new(),
        }
    }

    fn client_of(headers: &[(&str, &str)]) -> Option<String> {
        client(&request(headers)).map(|(ip, port)| format!("{ip} {port:?}"))
    }

    #[test]
    fn the_last_forwarded_element_names_the_client() {
        let named = client_of(&[("forwarded", "for=198.51.100.9, for=192.0.2.60;proto=https;by=203.0.113.43")]);
        assert_eq!(named.as_deref(), Some("192.0.2.60 None"));
        let v6 = client_of(&[("forwarded", r#"For="[2001:db8:cafe::17]:4711""#)]);
        assert_eq!(v6.as_deref(), Some("2001:db8:cafe::17 Some(4711)"));
        let lines = client_of(&[("forwarded", "for=198.51.100.9"), ("forwarded", "for=\"192.0.2.43:47011\"")]);
        assert_eq!(lines.as_deref(), Some("192.0.2.43 Some(47011)"));
    }

    #[test]
    fn x_forwarded_for_counts_only_without_forwarded() {
        let xff = client_of(&[("x-forwarded-for", "10.9.9.9, 203.0.113.7")]);
        assert_eq!(xff.as_deref(), Some("203.0.113.7 None"));
        let v6 = client_of(&[("x-forwarded-for", "2001:db8::5")]);
        assert_eq!(v6.as_deref(), Some("2001:db8::5 None"));
        let both = client_of(&[("x-forwarded-for", "203.0.113.7"), ("forwarded", "for=192.0.2.60")]);
        assert_eq!(both.as_deref(), Some("192.0.2.60 None"));
    }

    #[test]
    fn entries_that_are_not_addresses_name_nobody() {
        for headers in [
            &[("forwarded", "for=unknown")][..],
            &[("forwarded", "for=_hidden, for=192.0.2.1;by=x, proto=http")],
            &[("forwarded", "proto=https")],
            &[("x-forwarded-for", "192.0.2.1, ")],
            &[("x-forwarded-for", "not an address")],
            &[],
        ] {
            assert_eq!(client_of(headers), None, "{headers:?}");
        }
    }
}
