//! The opening handshake (RFC 6455 §4.2): the client's HTTP/1.1 upgrade
//! request, the accept key, subprotocol choice, and the server's response.

mod accept_key;
mod negotiate;
mod request;
mod response;

pub use accept_key::accept_key;
pub use negotiate::choose_subprotocol;
pub use request::{HandshakeError, Request, parse_request, plain_get};
pub use response::{Page, write_error_response, write_page_response, write_upgrade_response};
