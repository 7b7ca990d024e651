//! A minimal HTTP/1.1 client (one request per connection) for talking to
//! the daemon raw: exact headers, broken bodies, oversize bodies.

use std::io::{Read, Write};
use std::net::TcpStream;

use pretty_assertions::assert_eq;
use serde_json::Value;

use crate::harness::PATIENCE;

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) json: Value,
}

impl Reply {
    /// Asserts the API's one error shape with this status and type; returns the message.
    pub(crate) fn expect_error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(self.json["error"]["type"], kind, "{self:#?}");
        assert_eq!(self.json.as_object().map(|o| o.len()), Some(1), "{self:#?}");
        let message = self.json["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{self:#?}");
        message.to_owned()
    }
}

/// A minimal HTTP/1.1 request over a fresh connection (`Connection: close`).
pub(crate) fn http(
    host_port: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(host_port).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    // The server may answer (413) and close before reading a large body.
    let _ = stream.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no response head in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let rest = &raw[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body_bytes = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    let body = String::from_utf8_lossy(&body_bytes).into_owned();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Reply { status, body, json }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}
