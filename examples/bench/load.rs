//! A small closed-loop HTTP/1.1 load generator, in the manner of wrk: a
//! number of keep-alive connections, each sending one request after the
//! other for a fixed time, with the bytes of the request written by hand
//! and the answer read up to its `Content-Length`. It runs on the same
//! cores as the server, as the benchmark's figures say.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one run measured.
pub struct Load {
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `GET path` with `key` (if any) on `connections` connections for `run`.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    connections: usize,
    run: Duration,
) -> Load {
    let auth = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}Connection: keep-alive\r\n\r\n")
            .into_bytes();
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            connection(addr, &request, deadline).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.unwrap();
        latencies.append(&mut l);
        errors += e;
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Load {
        errors,
        per_second: latencies.len() as f64 / run.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// One connection's loop: latencies of its 200 answers, and its errors.
async fn connection(addr: SocketAddr, request: &[u8], deadline: Instant) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut buf = vec![0u8; 64 * 1024];
    'connect: while Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            errors += 1;
            continue;
        };
        let _ = stream.set_nodelay(true);
        while Instant::now() < deadline {
            let sent = Instant::now();
            if stream.write_all(request).await.is_err() {
                errors += 1;
                continue 'connect;
            }
            match read_answer(&mut stream, &mut buf).await {
                Some(200) => latencies.push(sent.elapsed()),
                Some(_) => errors += 1,
                None => {
                    errors += 1;
                    continue 'connect;
                }
            }
        }
    }
    (latencies, errors)
}

/// Reads one answer whole; its status, or `None` when the connection broke.
async fn read_answer(stream: &mut TcpStream, buf: &mut [u8]) -> Option<u16> {
    let mut filled = 0;
    let head_end = loop {
        let n = stream.read(&mut buf[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        if let Some(at) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if filled == buf.len() {
            return None;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = filled - head_end;
    while body < length {
        let n = stream.read(&mut buf[..]).await.ok()?;
        if n == 0 {
            return None;
        }
        body += n;
    }
    Some(status)
}
