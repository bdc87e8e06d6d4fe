//! Parsing `Sec-WebSocket-Extensions` offers and choosing the
//! permessage-deflate parameters (RFC 7692 §5, §7.1).

/// What the server is willing to do; the defaults accept any client offer.
///
/// Memory per connection (see [`crate::deflate`]): between messages, a
/// connection keeps one window (2^bits bytes) per side that keeps its
/// context; while a compressed message is being inflated it also holds a
/// decompressor (~40 KiB: zlib-rs allocates a 32 KiB window whatever the
/// bits). Compressors are shared.
/// The defaults (12-bit windows, context kept) cost at most 8 KiB between
/// messages and compress a corpus of JSON chat messages nearly as well as
/// 15-bit windows (docs/deflate.md has the ratios).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Largest LZ77 window (as a power of two, 8–15) our compressor uses;
    /// with context takeover each connection keeps this much of what it sent.
    /// Default 12 (4 KiB).
    pub server_max_window_bits: u8,
    /// Largest window we ask clients to compress with (8–15), when they
    /// allow us to ask; with context takeover each connection keeps this much
    /// of what it received. A client that does not let us limit its window
    /// (no `client_max_window_bits` in its offer) may use 32 KiB: unless this
    /// is 15, such a client is asked not to keep its context
    /// (`client_no_context_takeover`), so its window is never kept. Default 12.
    pub client_max_window_bits: u8,
    /// Reset our compressor after every message (nothing kept between
    /// messages, worse compression). Default off.
    pub server_no_context_takeover: bool,
    /// Ask every client to reset theirs (nothing of theirs kept between
    /// messages). Default off.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed. Default
    /// 32: below that, deflate's framing costs more than it saves.
    pub min_size: usize,
    /// zlib compression level 0–9. Default 1: most of the ratio for a
    /// fraction of the CPU of level 6.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_max_window_bits: wsbox_defaults::DEFLATE_SERVER_WINDOW_BITS,
            client_max_window_bits: wsbox_defaults::DEFLATE_CLIENT_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            min_size: wsbox_defaults::DEFLATE_MIN_SIZE,
            level: wsbox_defaults::DEFLATE_LEVEL,
        }
    }
}

/// The parameters both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// We reset our compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message (so can we our decompressor).
    pub client_no_context_takeover: bool,
    /// Our compressor's window (8–15).
    pub server_max_window_bits: u8,
    /// The client's compressor's window (8–15); our decompressor uses it.
    pub client_max_window_bits: u8,
}

/// One extension offer: its name and parameters in order, values unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token (`permessage-deflate`).
    pub name: String,
    /// `(name, value)`; `None` for a parameter without a value.
    pub params: Vec<(String, Option<String>)>,
}

/// Splits header values into offers: `name *( ";" param [ "=" value ] )`,
/// offers separated by commas, values tokens or quoted strings (commas and
/// semicolons inside quotes do not split). `None` when the syntax is broken.
pub fn parse_offers(values: &[String]) -> Option<Vec<ExtensionOffer>> {
    let mut offers = Vec::new();
    for value in values {
        // Split at separators outside quotes.
        let mut elements: Vec<Vec<String>> = vec![vec![String::new()]];
        let mut quoted = false;
        let mut escaped = false;
        for c in value.chars() {
            let part = elements.last_mut().and_then(|e| e.last_mut()).expect("never empty");
            match c {
                _ if escaped => {
                    part.push(c);
                    escaped = false;
                }
                '\\' if quoted => escaped = true,
                '"' => {
                    quoted = !quoted;
                    part.push(c);
                }
                ',' if !quoted => elements.push(vec![String::new()]),
                ';' if !quoted => elements.last_mut().expect("never empty").push(String::new()),
                _ => part.push(c),
            }
        }
        if quoted {
            return None;
        }
        for element in elements {
            let mut parts = element.into_iter().map(|p| p.trim().to_string());
            let name = parts.next().unwrap_or_default();
            if name.is_empty() {
                continue; // empty list elements are allowed (RFC 7230 §7)
            }
            if !is_token(&name) {
                return None;
            }
            let mut params = Vec::new();
            for part in parts {
                let (key, value) = match part.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), Some(unquote(v.trim())?)),
                    None => (part.clone(), None),
                };
                if !is_token(&key) {
                    return None;
                }
                params.push((key, value));
            }
            offers.push(ExtensionOffer { name, params });
        }
    }
    Some(offers)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn unquote(v: &str) -> Option<String> {
    match v.strip_prefix('"') {
        Some(rest) => Some(rest.strip_suffix('"')?.replace('\\', "")),
        None => Some(v.to_string()),
    }
}

/// Window bits: 1*DIGIT in 8–15 (RFC 7692 §7.1.2), no leading zero.
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || v.len() > 2 {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Accepts the first acceptable `permessage-deflate` offer in `values` (the
/// `Sec-WebSocket-Extensions` headers). Returns the agreed parameters and the
/// response header value, or `None` to decline (no offer, or none valid: an
/// unknown or duplicate parameter, or a bad value, declines that offer).
pub fn negotiate(values: &[String], config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    parse_offers(values)?.iter().filter(|o| o.name == "permessage-deflate").find_map(|o| accept(o, config))
}

fn accept(offer: &ExtensionOffer, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let mut seen: Vec<&str> = Vec::new();
    let (mut server_nct, mut client_nct) = (false, false);
    let mut server_bits: Option<u8> = None;
    // Some(None): offered without a value; Some(Some(n)): offered with n.
    let mut client_bits: Option<Option<u8>> = None;
    for (name, value) in &offer.params {
        if seen.contains(&name.as_str()) {
            return None;
        }
        seen.push(name);
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => server_nct = true,
            ("client_no_context_takeover", None) => client_nct = true,
            ("server_max_window_bits", Some(v)) => server_bits = Some(window_bits(v)?),
            ("client_max_window_bits", None) => client_bits = Some(None),
            ("client_max_window_bits", Some(v)) => client_bits = Some(Some(window_bits(v)?)),
            _ => return None,
        }
    }
    let server_cap = config.server_max_window_bits.clamp(8, 15);
    let client_cap = config.client_max_window_bits.clamp(8, 15);
    // A client whose window we may not limit keeps its context only if the
    // window it may use (32 KiB) fits what we keep.
    let unbounded_client_window = client_bits.is_none() && client_cap < 15;
    let params = DeflateParams {
        server_no_context_takeover: server_nct || config.server_no_context_takeover,
        client_no_context_takeover: client_nct || config.client_no_context_takeover || unbounded_client_window,
        server_max_window_bits: server_bits.map_or(server_cap, |b| b.min(server_cap)),
        client_max_window_bits: match client_bits {
            None => 15,
            Some(None) => client_cap,
            Some(Some(b)) => b.min(client_cap),
        },
    };
    let mut response = String::from("permessage-deflate");
    if params.server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    // Announced only when offered: a smaller window than the peer allows
    // is always safe for the sender, so our own cap needs no announcement.
    if server_bits.is_some() {
        response.push_str(&format!("; server_max_window_bits={}", params.server_max_window_bits));
    }
    // The client's window may only be limited when the client allowed it.
    if client_bits.is_some() && (params.client_max_window_bits < 15 || matches!(client_bits, Some(Some(_)))) {
        response.push_str(&format!("; client_max_window_bits={}", params.client_max_window_bits));
    }
    Some((params, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(v: &str) -> Option<(DeflateParams, String)> {
        negotiate(&[v.to_string()], &DeflateConfig::default())
    }

    #[test]
    fn a_bare_offer_is_accepted_and_the_client_asked_not_to_keep_its_unbounded_window() {
        let (p, r) = offer("permessage-deflate").unwrap();
        assert_eq!(r, "permessage-deflate; client_no_context_takeover");
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (12, 15));
        assert!(!p.server_no_context_takeover && p.client_no_context_takeover);
        // A browser's offer: the client's window is limited, both keep context.
        let (p, r) = offer("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(r, "permessage-deflate; client_max_window_bits=12");
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (12, 12));
        assert!(!p.server_no_context_takeover && !p.client_no_context_takeover);
    }

    #[test]
    fn full_windows_keep_every_context() {
        let config = DeflateConfig { server_max_window_bits: 15, client_max_window_bits: 15, ..Default::default() };
        let (p, r) = negotiate(&["permessage-deflate".into()], &config).unwrap();
        assert_eq!(r, "permessage-deflate");
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (15, 15));
        assert!(!p.server_no_context_takeover && !p.client_no_context_takeover);
    }

    #[test]
    fn each_parameter_is_honoured() {
        let (p, r) = offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover").unwrap();
        assert!(p.server_no_context_takeover && p.client_no_context_takeover);
        assert_eq!(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        let (p, r) = offer("permessage-deflate; server_max_window_bits=10; client_max_window_bits").unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        assert_eq!(r, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12");
        let (p, r) = offer("permessage-deflate; server_max_window_bits=15; client_max_window_bits").unwrap();
        assert_eq!(p.server_max_window_bits, 12);
        assert_eq!(r, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
        let (p, r) = offer("permessage-deflate; client_max_window_bits=\"9\"").unwrap();
        assert_eq!(p.client_max_window_bits, 9);
        assert_eq!(r, "permessage-deflate; client_max_window_bits=9");
        let (p, _) = offer("permessage-deflate; server_max_window_bits=8").unwrap();
        assert_eq!(p.server_max_window_bits, 8);
    }

    #[test]
    fn the_server_config_limits_windows_and_may_add_no_context_takeover() {
        let config = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let (p, r) =
            negotiate(&["permessage-deflate; client_max_window_bits; server_max_window_bits=12".into()], &config)
                .unwrap();
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (10, 11));
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"
        );
        // Without the client's permission its window is not limited.
        let (p, r) = negotiate(&["permessage-deflate".into()], &config).unwrap();
        assert_eq!(p.client_max_window_bits, 15);
        assert!(!r.contains("client_max_window_bits"));
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_acceptable_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown_param",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
        }
        let (p, _) =
            offer("permessage-deflate; foo, permessage-deflate; server_max_window_bits=9, permessage-deflate").unwrap();
        assert_eq!(p.server_max_window_bits, 9);
    }

    #[test]
    fn several_headers_and_quoted_values_parse() {
        let offers = parse_offers(&[
            "foo; a=\"x,y;z\", permessage-deflate".to_string(),
            "permessage-deflate; client_max_window_bits=\"10\"".to_string(),
        ])
        .unwrap();
        assert_eq!(offers.len(), 3);
        assert_eq!(offers[0].params, [("a".to_string(), Some("x,y;z".to_string()))]);
        assert_eq!(offers[2].params, [("client_max_window_bits".to_string(), Some("10".to_string()))]);
        assert_eq!(parse_offers(&["permessage-deflate; a=\"unterminated".to_string()]), None);
    }
}
