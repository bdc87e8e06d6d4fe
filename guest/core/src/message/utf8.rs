//! Streaming UTF-8 validation that fails at the first invalid byte.
//!
//! A text message may arrive split anywhere: across frames, across reads,
//! inside a code point. RFC 6455 §8.1 asks to fail the connection as soon as
//! the bytes cannot be valid UTF-8, which Autobahn's cases 6.4.* check by
//! sending the bad byte in the middle of a frame. The validation itself is the
//! standard library's; this type only carries an incomplete code point (at
//! most three bytes) from one chunk to the next.

/// The bytes fed so far can never become valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a byte stream chunk by chunk.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

impl Utf8Validator {
    /// Validates `bytes` as the continuation of everything fed before.
    ///
    /// Fails as soon as a byte makes the stream invalid, even when the code
    /// point it belongs to is not complete yet (`F4 90` fails at once).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        // Finish the code point left over from the previous chunk first.
        while self.partial_len > 0 {
            let Some((&b, rest)) = bytes.split_first() else { return Ok(()) };
            bytes = rest;
            self.partial[self.partial_len] = b;
            self.partial_len += 1;
            match std::str::from_utf8(&self.partial[..self.partial_len]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
        }
    }

    /// Bytes of an incomplete code point at the end of what was fed.
    pub fn pending(&self) -> usize {
        self.partial_len
    }

    /// True when the stream fed so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in_chops(bytes: &[u8], chop: usize) -> (Result<(), InvalidUtf8>, usize, bool) {
        let mut v = Utf8Validator::default();
        let mut fed = 0;
        for chunk in bytes.chunks(chop.max(1)) {
            if v.feed(chunk).is_err() {
                return (Err(InvalidUtf8), fed, false);
            }
            fed += chunk.len();
        }
        (Ok(()), fed, v.is_complete())
    }

    #[test]
    fn valid_text_passes_at_every_chop_size() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10FFFF}".as_bytes();
        for chop in 1..=text.len() {
            assert_eq!(feed_in_chops(text, chop), (Ok(()), text.len(), true), "chop {chop}");
        }
    }

    #[test]
    fn fails_fast_at_the_first_invalid_byte() {
        // "κόσμε" followed by F4 90 (beyond U+10FFFF) and more text.
        let mut bytes = "κόσμε".as_bytes().to_vec();
        let bad_at = bytes.len() + 1;
        bytes.extend_from_slice(&[0xF4, 0x90, 0x80, 0x80, b'e', b'd']);
        let mut v = Utf8Validator::default();
        for (i, b) in bytes.iter().enumerate() {
            let r = v.feed(std::slice::from_ref(b));
            if i < bad_at {
                assert_eq!(r, Ok(()), "byte {i}");
            } else {
                assert_eq!(r, Err(InvalidUtf8), "byte {i} must fail");
                break;
            }
        }
    }

    #[test]
    fn rejects_surrogates_overlongs_and_stray_continuations() {
        for bad in [
            &[0xED, 0xA0, 0x80][..],
            &[0xC0, 0xAF],
            &[0xE0, 0x80, 0xAF],
            &[0x80],
            &[0xFE],
            &[0xF8, 0x88, 0x80, 0x80, 0x80],
        ] {
            assert_eq!(Utf8Validator::default().feed(bad), Err(InvalidUtf8), "{bad:x?}");
        }
    }

    #[test]
    fn an_incomplete_code_point_at_the_end_is_reported() {
        let mut v = Utf8Validator::default();
        v.feed(&[b'a', 0xE2, 0x82]).unwrap();
        assert_eq!(v.pending(), 2);
        assert!(!v.is_complete());
        v.feed(&[0xAC]).unwrap();
        assert!(v.is_complete());
    }
}
