//! HTTP/1.1 over a plain `TcpStream`, with no HTTP client crate: one request per
//! connection (`Connection: close`), the answer read to the end, its status, header
//! block and body (de-chunked).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::net::connect;

/// How long a whole answer may take to arrive (big `/raw` downloads included).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// One HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The status line and header block as sent, lowercased, without the blank line.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics, showing it, if it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// Sends `request` (a whole HTTP/1.1 request that says `Connection: close`) on a new
/// connection and reads the whole answer.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    exchange_on(connect(addr), request)
}

/// [`exchange`] on a stream already connected (from a chosen address, say).
pub fn exchange_on(mut stream: TcpStream, request: &[u8]) -> Response {
    stream.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    stream.write_all(request).unwrap_or_else(|e| {
        panic!(
            "cannot send {:?}: {e}",
            String::from_utf8_lossy(&request[..request.len().min(200)])
        )
    });
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap_or_else(|e| {
        panic!(
            "no whole answer to {:?}: {e}",
            String::from_utf8_lossy(&request[..request.len().min(200)])
        )
    });
    parse(&response)
}

/// `METHOD path`, with `body` as JSON if given.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Response {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    match body {
        Some(body) => {
            let body = body.to_string();
            request.extend_from_slice(
                format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
        None => request.extend_from_slice(b"\r\n"),
    }
    exchange(addr, &request)
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None)
}

/// `GET path`, which must answer 200 with JSON.
#[track_caller]
pub fn get_json(addr: SocketAddr, path: &str) -> Value {
    let response = get(addr, path);
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    response.json()
}

/// Splits a whole answer into status, header block and (de-chunked) body.
fn parse(response: &[u8]) -> Response {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(response)
            )
        });
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = &response[end + 4..];
    let body = if head.contains("\r\ntransfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Response { status, head, body }
}

/// The payload of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|e| panic!("bad chunk size {size_text:?}: {e}"));
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}
