//! Apps that drive the component's exported `server`, as Qt apps drive
//! `QWebSocketServer`.

pub mod echo;
pub mod log_budget;
