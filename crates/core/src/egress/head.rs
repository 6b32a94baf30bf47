//! The head of a request to the egress proxy: `CONNECT host:port` (a tunnel,
//! for https and anything else over TCP) or an absolute-form `http://` URL
//! (plain http, forwarded in origin form), and the answers the proxy gives
//! itself.

/// Largest request head the proxy reads.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines in a head.
const MAX_HEADERS: usize = 100;

/// Headers that concern one hop only; the proxy sets its own `Connection`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "upgrade",
];

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub host: String,
    pub port: u16,
    /// `None` for a tunnel; else the head to send to the origin server.
    pub forward_head: Option<Vec<u8>>,
    /// Bytes of the head read from the client (what follows belongs to the body or tunnel).
    pub head_len: usize,
}

/// Why a head cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("the request head is larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("the proxy serves CONNECT and absolute http:// URLs only (got {0})")]
    Unsupported(String),
}

/// Parses `buf`: `Ok(None)` while the head is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = authority(target)?;
        return Ok(Some(Request {
            host,
            port,
            forward_head: None,
            head_len,
        }));
    }
    let url = url::Url::parse(target)
        .map_err(|_| HeadError::Unsupported(format!("{method} {}", clip(target))))?;
    if url.scheme() != "http" {
        return Err(HeadError::Unsupported(format!(
            "a {} URL; https goes through CONNECT",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| HeadError::Malformed("no host in the URL".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut origin = url.path().to_owned();
    if let Some(query) = url.query() {
        origin.push('?');
        origin.push_str(query);
    }
    let mut head = format!("{method} {origin} HTTP/1.1\r\n").into_bytes();
    let mut has_host = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        has_host |= name == "host";
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    if !has_host {
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        head.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
    // One request per connection: a reused connection could carry a next
    // request for another host to this one.
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Some(Request {
        host,
        port,
        forward_head: Some(head),
        head_len,
    }))
}

/// `host:port` of a CONNECT (`[v6]:port` too).
fn authority(target: &str) -> Result<(String, u16), HeadError> {
    let bad = || HeadError::Malformed(format!("CONNECT needs host:port, got {}", clip(target)));
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The proxy's own answer: a plain-text body that says what happened and
/// what to do, and `Connection: close`.
pub fn answer(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let body = format!("{body}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_names_a_tunnel() {
        let buf = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nXY";
        let r = parse(buf).unwrap().unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.com", 443));
        assert_eq!(r.forward_head, None);
        assert_eq!(r.head_len, buf.len() - 2);
        let r = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 8443));
        assert!(parse(b"CONNECT example.com HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"CONNECT example.com:0 HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn absolute_form_is_forwarded_in_origin_form() {
        let r = parse(
            b"GET http://Example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\nbody",
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.com", 8080));
        assert_eq!(
            String::from_utf8(r.forward_head.unwrap()).unwrap(),
            "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let r = parse(b"POST http://h/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        let head = String::from_utf8(r.forward_head.unwrap()).unwrap();
        assert!(head.contains("Host: h\r\n"), "{head}");
        assert_eq!(r.port, 80);
    }

    #[test]
    fn other_forms_are_refused() {
        assert!(matches!(
            parse(b"GET /local HTTP/1.1\r\n\r\n"),
            Err(HeadError::Unsupported(_))
        ));
        assert!(matches!(
            parse(b"GET https://example.com/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Unsupported(_))
        ));
        assert!(matches!(
            parse(b"GET ftp://example.com/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Unsupported(_))
        ));
        assert_eq!(parse(b"GET http://example.com/ HTTP/1.1\r\nHost"), Ok(None));
        let big = vec![b'a'; MAX_HEAD_BYTES];
        assert!(parse(&big).is_err());
    }
}
