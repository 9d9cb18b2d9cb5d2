//! An upload cut off mid-body: the form twine sends, whose head and first part go out on a
//! plain TCP connection while the rest never does, so the replica is certainly in the
//! middle of reading it when the test acts.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;

use base64::Engine as _;

use crate::common;

const BOUNDARY: &str = "edelweiss-cluster-test-boundary";

/// Opens `POST /legacy/` at `url` (`http://host:port`) for `file` and sends all but the
/// last half of its bytes. The call returns once the kernel took them, so the server has
/// read all but what the two sockets' buffers hold; the connection stays open.
pub fn half_sent_upload(url: &str, file: &Path, name: &str, version: &str) -> TcpStream {
    let bytes = std::fs::read(file).unwrap();
    let filename = file.file_name().unwrap().to_string_lossy();
    let fields = [
        (":action", "file_upload".to_string()),
        ("protocol_version", "1".to_string()),
        ("name", name.to_string()),
        ("version", version.to_string()),
        ("sha256_digest", common::sha256_hex(&bytes)),
    ];
    let mut before = String::new();
    for (field, value) in &fields {
        before.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
        ));
    }
    before.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    let after = format!("\r\n--{BOUNDARY}--\r\n");
    let length = before.len() + bytes.len() + after.len();
    let address = url.strip_prefix("http://").expect("an http URL");
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("__token__:{}", common::UPLOAD_TOKEN));
    let head = format!(
        "POST /legacy/ HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {credentials}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    );
    let mut stream = TcpStream::connect(address).expect("connect to the replica");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(before.as_bytes()).unwrap();
    stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stream.flush().unwrap();
    stream
}
