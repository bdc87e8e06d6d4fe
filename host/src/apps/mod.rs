//! Apps that drive the component's exported `server`, as Qt apps drive
//! `QWebSocketServer`.

pub mod echo;
mod hand_over;
pub mod log_budget;

pub use hand_over::HandOver;
