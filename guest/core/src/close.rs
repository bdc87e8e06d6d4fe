//! Close codes (RFC 6455 §7.4) and the rules for the close frame payload.

use std::fmt;

/// A WebSocket close status code, as `QWebSocketProtocol::CloseCode` carries it.
///
/// The named constants mirror Qt's enum. Codes 3000–4999 (registered by
/// libraries and applications) are plain numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: an endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const DATATYPE_NOT_SUPPORTED: Self = Self(1003);
    /// 1004: reserved, never sent.
    pub const RESERVED_1004: Self = Self(1004);
    /// 1005: "no status code was present"; never sent on the wire.
    pub const MISSING_STATUS_CODE: Self = Self(1005);
    /// 1006: the connection dropped without a close frame; never sent on the wire.
    pub const ABNORMAL_DISCONNECTION: Self = Self(1006);
    /// 1007: a text message was not valid UTF-8 (Qt: `CloseCodeWrongDatatype`).
    pub const WRONG_DATATYPE: Self = Self(1007);
    /// 1008: a policy was violated (Qt: origin refused).
    pub const POLICY_VIOLATED: Self = Self(1008);
    /// 1009: a frame or message exceeded a size limit.
    pub const TOO_MUCH_DATA: Self = Self(1009);
    /// 1010: the client required an extension the server did not negotiate.
    pub const MISSING_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const BAD_OPERATION: Self = Self(1011);
    /// 1012: the service is restarting; the client may reconnect (the
    /// IANA registry; wsbox's host sends it when an instance fails).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: the server is overloaded; try again later (the IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1015: the TLS handshake failed; never sent on the wire.
    pub const TLS_HANDSHAKE_FAILED: Self = Self(1015);

    /// Whether a peer may send this code in a close frame (RFC 6455 §7.4.1 and
    /// the IANA registry): 1000–1003, 1007–1014 and 3000–4999.
    ///
    /// Unlike Qt, the registered codes 1012–1014 (service restart, try again
    /// later, bad gateway) are accepted.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

/// The largest close reason that fits a control frame: 125 bytes minus the code.
pub const MAX_REASON_LEN: usize = 123;

/// Cuts `reason` to at most [`MAX_REASON_LEN`] bytes at a character boundary
/// (Qt cuts at byte 123 even inside a character and sends invalid UTF-8).
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_follows_rfc_6455_section_7_4() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code} must be valid");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code} must be invalid");
        }
    }

    #[test]
    fn reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(70); // 140 bytes, 2 per character
        let cut = truncate_reason(&reason);
        assert_eq!(cut.len(), 122);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate_reason("short"), "short");
    }
}
