//! Subprotocol choice: Qt's rule.

/// The first subprotocol in the client's order (`offered`, all
/// `Sec-WebSocket-Protocol` values split at commas and trimmed) that exactly
/// matches one of `supported`. `None`: the upgrade still succeeds, without a
/// protocol header.
pub fn choose_subprotocol<'a>(offered: &'a [String], supported: &[String]) -> Option<&'a str> {
    offered.iter().find(|p| supported.iter().any(|s| s == *p)).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_order_decides_and_matching_is_case_sensitive() {
        let offered = ["chat".to_string(), "superchat".to_string()];
        let supported = ["superchat".to_string(), "chat".to_string()];
        assert_eq!(choose_subprotocol(&offered, &supported), Some("chat"));
        assert_eq!(choose_subprotocol(&offered, &["CHAT".to_string()]), None);
        assert_eq!(choose_subprotocol(&[], &supported), None);
    }
}
