//! One connection's TLS state: rustls as a codec between the socket's raw
//! bytes and the plaintext the guest sees.

use rustls::ServerConnection;
use std::io::BufRead;
use std::sync::Arc;

/// The facts of an established session, as the guest reads them.
#[derive(Clone, Debug)]
pub struct TlsSession {
    /// "TLSv1_3", "TLSv1_2".
    pub protocol: String,
    /// The cipher suite, e.g. "TLS13_AES_128_GCM_SHA256".
    pub cipher: String,
    /// The server name the client asked for (SNI), "" if none.
    pub server_name: String,
    /// The negotiated ALPN protocol, "" if none.
    pub alpn: String,
    /// The client's certificate chain (DER), when client auth is on.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// Why the TLS handshake (or session) failed.
#[derive(Clone, Debug)]
pub struct TlsFailure {
    /// rustls's description.
    pub message: String,
    /// The alert the peer sent, if that is what ended it.
    pub alert_received: Option<u8>,
    /// The client's certificate was missing or did not verify.
    pub peer_verify: bool,
}

/// Most raw bytes held back while rustls's plaintext buffer is full; the
/// reader stops reading the socket long before (it is blocked for the turn),
/// so passing this means a peer rustls will not take input from.
const MAX_BACKLOG: usize = 256 * 1024;

/// rustls plus the raw bytes it has not taken yet.
pub struct TlsState {
    conn: ServerConnection,
    backlog: Vec<u8>,
    reported: bool,
    peer_closed: bool,
}

impl TlsState {
    /// A new server-side session.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self { conn: ServerConnection::new(config)?, backlog: Vec::new(), reported: false, peer_closed: false })
    }

    /// Takes raw bytes from the socket; handshake records to send go to `out`.
    pub fn receive(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), TlsFailure> {
        self.backlog.extend_from_slice(raw);
        let result = self.pump();
        self.flush(out);
        result
    }

    /// Feeds the backlog to rustls as far as it takes it. Stops (keeping the
    /// rest) only while rustls holds plaintext for us to take; any other
    /// refusal is a failure, and after the peer's close_notify the rest is
    /// dropped (nothing after it counts).
    fn pump(&mut self) -> Result<(), TlsFailure> {
        let mut offset = 0;
        let result = loop {
            if offset == self.backlog.len() || self.peer_closed {
                break Ok(());
            }
            let mut rd = &self.backlog[offset..];
            match self.conn.read_tls(&mut rd) {
                Ok(0) => break Ok(()),
                Ok(n) => offset += n,
                Err(e) => {
                    let full = self.conn.process_new_packets().is_ok_and(|s| s.plaintext_bytes_to_read() > 0);
                    if full {
                        break Ok(());
                    }
                    break Err(TlsFailure { message: e.to_string(), alert_received: None, peer_verify: false });
                }
            }
            match self.conn.process_new_packets() {
                Ok(state) => self.peer_closed |= state.peer_has_closed(),
                Err(e) => break Err(failure(e)),
            }
        };
        if self.peer_closed {
            self.backlog.clear();
        } else {
            self.backlog.drain(..offset);
        }
        if result.is_ok() && self.backlog.len() > MAX_BACKLOG {
            return Err(TlsFailure {
                message: "TLS input backlog over its limit".into(),
                alert_received: None,
                peer_verify: false,
            });
        }
        result
    }

    /// The peer sent close_notify: no more input will come.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Moves up to `max` plaintext bytes to the end of `dst`. Returns how
    /// many, and whether input may still be waiting inside (the caller
    /// stopped at `max`, or rustls has raw bytes it could not take yet); an
    /// error found while feeding held-back bytes fails the session.
    pub fn take_plaintext(&mut self, dst: &mut Vec<u8>, max: usize) -> Result<(usize, bool), TlsFailure> {
        let mut taken = 0;
        loop {
            while taken < max {
                // Straight from rustls's buffer (`fill_buf` lends it), not
                // through a bounce buffer.
                let mut reader = self.conn.reader();
                let n = match reader.fill_buf() {
                    Ok(plain) if !plain.is_empty() => {
                        let n = plain.len().min(max - taken);
                        dst.extend_from_slice(&plain[..n]);
                        n
                    }
                    _ => break,
                };
                reader.consume(n);
                taken += n;
            }
            if taken >= max || self.backlog.is_empty() {
                break;
            }
            // rustls refused raw bytes while its plaintext buffer was full.
            let before = self.backlog.len();
            self.pump()?;
            if self.backlog.len() == before {
                break;
            }
        }
        Ok((taken, taken >= max || !self.backlog.is_empty()))
    }

    /// Encrypts `plain` into TLS records appended to `out`. rustls takes at
    /// most its buffer limit at a time, so this alternates writing and
    /// flushing until every byte is in a record.
    pub fn encrypt(&mut self, mut plain: &[u8], out: &mut Vec<u8>) {
        use std::io::Write;
        while !plain.is_empty() {
            match self.conn.writer().write(plain) {
                Ok(0) | Err(_) if !self.conn.wants_write() => break,
                Ok(n) => plain = &plain[n..],
                Err(_) => {}
            }
            self.flush(out);
        }
        self.flush(out);
    }

    /// Queues a close_notify alert.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) {
        self.conn.send_close_notify();
        self.flush(out);
    }

    /// The session facts, once, after the handshake completed.
    pub fn take_new_session(&mut self) -> Option<TlsSession> {
        if self.reported || self.conn.is_handshaking() {
            return None;
        }
        self.reported = true;
        Some(TlsSession {
            protocol: self.conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
            cipher: self.conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default(),
            server_name: self.conn.server_name().unwrap_or_default().to_string(),
            alpn: self.conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
            peer_certificates: self.conn.peer_certificates().unwrap_or_default().iter().map(|c| c.to_vec()).collect(),
        })
    }

    /// True until the handshake completed.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Appends every record rustls has queued (an alert after a failure).
    pub fn flush_into(&mut self, out: &mut Vec<u8>) {
        self.flush(out);
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }
}

fn failure(e: rustls::Error) -> TlsFailure {
    let alert_received = match &e {
        rustls::Error::AlertReceived(a) => Some(u8::from(*a)),
        _ => None,
    };
    let peer_verify = matches!(e, rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented);
    TlsFailure { message: e.to_string(), alert_received, peer_verify }
}
