//! The page wsbox serves to browsers (`--page`, `--page-file`): a plain `GET /` (no
//! upgrade) is answered with it on every listener, over HTTP/1.1 and
//! HTTP/2, so a browser pointed at the server finds a client whose socket
//! connects back to the same server (on wss://, as a stream of the page's
//! own HTTP/2 connection). Upgrade requests on `/` still upgrade.

use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Where the page is served.
pub const PATH: &str = "/";

/// The largest page: each answer is written into the guest's memory whole,
/// so a crowd asking for a large one at once would spend the guest's
/// memory cap (the example client is ~5 KiB).
pub const MAX_SIZE: usize = 1024 * 1024;

/// The example echo client, built in: `--page` without a file.
const EXAMPLE_CLIENT: &[u8] = include_bytes!("../../examples/echoclient.html");

/// A page and its content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub path: String,
    pub content_type: String,
    /// Read once; shared by every instance, never copied on the host's side.
    pub body: Arc<[u8]>,
}

impl Page {
    /// `--page`: the example client; `--page-file FILE`: that file, read now.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let (body, content_type) = match file {
            None => (EXAMPLE_CLIENT.into(), "text/html; charset=utf-8"),
            Some(file) => {
                let body = std::fs::read(file).with_context(|| format!("reading the page {}", file.display()))?;
                if body.len() > MAX_SIZE {
                    anyhow::bail!("the page {} is {} bytes; a page is at most {MAX_SIZE}", file.display(), body.len());
                }
                (body.into(), content_type(file))
            }
        };
        Ok(Self { path: PATH.to_string(), content_type: content_type.to_string(), body })
    }
}

/// The content type a file's extension says (a page is HTML, mostly).
fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_alone_serves_the_example_client_and_a_file_gets_its_type() {
        let built_in = Page::load(None).unwrap();
        assert_eq!((built_in.path.as_str(), built_in.content_type.as_str()), ("/", "text/html; charset=utf-8"));
        assert!(std::str::from_utf8(&built_in.body).unwrap().contains("window.echoTest"));
        let file = std::env::temp_dir().join(format!("wsbox-page-{}.txt", std::process::id()));
        std::fs::write(&file, "hello").unwrap();
        let page = Page::load(Some(&file)).unwrap();
        assert_eq!((&*page.body, page.content_type.as_str()), (&b"hello"[..], "text/plain; charset=utf-8"));
        std::fs::write(&file, vec![b'x'; MAX_SIZE + 1]).unwrap();
        let large = Page::load(Some(&file)).unwrap_err();
        assert!(format!("{large:#}").contains("a page is at most 1048576"), "{large:#}");
        std::fs::remove_file(&file).unwrap();
        let missing = Page::load(Some(Path::new("/nonexistent/page.html"))).unwrap_err();
        assert!(format!("{missing:#}").contains("reading the page /nonexistent/page.html"), "{missing:#}");
    }
}
