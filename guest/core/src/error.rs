//! Protocol errors and the close code each one maps to.

use crate::close::CloseCode;
use std::fmt;

/// A rule of RFC 6455 the peer broke after the upgrade. Each variant maps to
/// one close code through [`ProtocolError::close_code`]; its message names the
/// rule and is sent as the close reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A reserved bit (RSV1–3) was set without a negotiated extension.
    ReservedBitsSet,
    /// Opcode 0x3–0x7 or 0xB–0xF.
    ReservedOpcode,
    /// A client frame without the mask bit (RFC 6455 §5.1; Qt accepts these).
    UnmaskedFrame,
    /// A control frame with a payload over 125 bytes.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A length encoded in more bytes than needed, or with the top bit set.
    NonMinimalLength,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open.
    ExpectedContinuation,
    /// A text message (or close reason) that is not valid UTF-8.
    InvalidUtf8,
    /// A close frame whose payload is one byte long.
    CloseFrameTooShort,
    /// A close frame with a code that may not be sent (1005, 999, 2000 …).
    InvalidCloseCode,
    /// A frame longer than the frame-size limit.
    FrameTooLarge,
    /// A message longer than the message-size limit (after inflating).
    MessageTooLarge,
    /// A compressed message that is not valid deflate data.
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code this error is reported with.
    pub fn close_code(self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::WRONG_DATATYPE,
            Self::FrameTooLarge | Self::MessageTooLarge => CloseCode::TOO_MUCH_DATA,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The close reason sent with the close frame.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ReservedBitsSet => "Rsv field is non-zero",
            Self::ReservedOpcode => "Used reserved opcode",
            Self::UnmaskedFrame => "Client frame is not masked",
            Self::ControlFrameTooLong => "Control frame is larger than 125 bytes",
            Self::FragmentedControlFrame => "Control frame is fragmented",
            Self::NonMinimalLength => "Payload length is not minimally encoded",
            Self::UnexpectedContinuation => "Continuation frame without a message to continue",
            Self::ExpectedContinuation => "New data frame while a fragmented message is open",
            Self::InvalidUtf8 => "Invalid UTF-8 code encountered.",
            Self::CloseFrameTooShort => "Payload of close frame is too small.",
            Self::InvalidCloseCode => "Invalid close code received",
            Self::FrameTooLarge => "Maximum framesize exceeded.",
            Self::MessageTooLarge => "Received message is too big.",
            Self::InvalidCompressedData => "Invalid compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (close code {})", self.reason(), self.close_code())
    }
}

impl std::error::Error for ProtocolError {}
