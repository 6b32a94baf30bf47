//! One connection to the egress proxy: read the head, decide (allowlist,
//! then the addresses the host resolves to), connect, then carry bytes both
//! ways until either side is done or the connection idles too long.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::OwnedSemaphorePermit;

use super::{allowlist, head, EgressProxy, Owner};
use crate::db::models::{egress, TenantId};
use crate::webhooks::ssrf::{self, Unreachable};

/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the origin may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Context {
    pub proxy: EgressProxy,
    pub owner: Arc<Owner>,
}

/// Why the proxy answers itself instead of connecting.
struct Refusal {
    status: u16,
    reason: &'static str,
    /// The metric's `outcome`.
    outcome: &'static str,
    body: String,
}

pub(super) async fn handle(
    mut client: UnixStream,
    context: Context,
    permit: Option<OwnedSemaphorePermit>,
) {
    let owner = context.owner.clone();
    let settings = &context.proxy.inner.settings;
    let mut buf = Vec::with_capacity(4096);
    let request = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await {
        Ok(Ok(Some(request))) => request,
        // The client went away, or sent nothing in time: nothing to answer.
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            let refusal = Refusal {
                status: 400,
                reason: "Bad Request",
                outcome: "bad_request",
                body: format!("claude-code-api egress proxy: {e}"),
            };
            refuse(&mut client, &owner, None, refusal).await;
            return;
        }
    };
    // Refused only once its head is read: closing on unread bytes resets
    // the connection, and the client would never see the answer.
    if permit.is_none() {
        let refusal = Refusal {
            status: 503,
            reason: "Service Unavailable",
            outcome: "over_limit",
            body: format!(
                "claude-code-api egress proxy: this agent has {} connections open, the most \
                 AGENT_EGRESS_MAX_CONNECTIONS allows; close some and try again.",
                settings.max_connections
            ),
        };
        refuse(&mut client, &owner, None, refusal).await;
        return;
    }
    let target = format!("{}:{}", request.host, request.port);
    let upstream = match open(&context, &request).await {
        Ok(upstream) => upstream,
        Err(refusal) => {
            refuse(&mut client, &owner, Some(&target), refusal).await;
            return;
        }
    };
    crate::metrics::agent_egress("allowed");
    tracing::debug!(tenant = %owner.tenant_id, session = %owner.session_id, target = %target, "egress allowed");
    let rest = &buf[request.head_len..];
    let opened = match &request.forward_head {
        None => {
            let mut upstream = upstream;
            let ok = client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_ok()
                && upstream.write_all(rest).await.is_ok();
            ok.then_some(upstream)
        }
        Some(forward) => {
            let mut upstream = upstream;
            let ok =
                upstream.write_all(forward).await.is_ok() && upstream.write_all(rest).await.is_ok();
            ok.then_some(upstream)
        }
    };
    if let Some(upstream) = opened {
        relay(client, upstream, settings.idle_timeout).await;
    }
    drop(permit);
}

/// Reads until a whole head is in `buf`; `None` when the client closed first.
async fn read_head(
    client: &mut UnixStream,
    buf: &mut Vec<u8>,
) -> Result<Option<head::Request>, head::HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(request) = head::parse(buf)? {
            return Ok(Some(request));
        }
    }
}

/// Checks `request` against the tenant's allowlist and the address rules,
/// then connects to the first address that answers.
async fn open(context: &Context, request: &head::Request) -> Result<TcpStream, Refusal> {
    let owner = &context.owner;
    let settings = &context.proxy.inner.settings;
    let host = allowlist::host_key(&request.host).unwrap_or_else(|| request.host.to_lowercase());
    let tenant = TenantId(owner.tenant_id.clone());
    let patterns = crate::db::run(&context.proxy.inner.pool, move |c| {
        egress::allowed_hosts(c, &tenant)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "cannot read a tenant's egress allowlist");
        upstream_error("cannot read the allowlist; try again".into())
    })?;
    if !allowlist::allows(&patterns, &host) {
        return Err(Refusal {
            status: 403,
            reason: "Forbidden",
            outcome: "not_allowed",
            body: format!(
                "claude-code-api egress proxy: {host} is not on the egress allowlist of tenant {tenant}, \
                 so this agent may not reach it.\n\
                 To allow it, an admin of the server adds it to the tenant's list (exact names, or \
                 *.example.com for every name below example.com):\n  \
                 PUT /api/v1/admin/tenants/{tenant}/egress {{\"allowed_hosts\": [\"{host}\", ...]}}",
                tenant = owner.tenant_id,
            ),
        });
    }
    let addrs = match ssrf::resolve_checked(&host, request.port, &settings.private_hosts).await {
        Ok(addrs) => addrs,
        Err(Unreachable::Unresolvable) => {
            return Err(upstream_error(format!("cannot resolve {host}")))
        }
        Err(Unreachable::Internal(addr)) => {
            tracing::info!(host = %host, addr = %addr, "egress refused: special-purpose address");
            return Err(Refusal {
                status: 403,
                reason: "Forbidden",
                outcome: "private_address",
                body: format!(
                    "claude-code-api egress proxy: {host} resolves to a loopback, private, link-local \
                     or other special-purpose address, which agents may not reach.\n\
                     The server's operator may exempt the host by adding it to AGENT_EGRESS_PRIVATE_HOSTS."
                ),
            });
        }
    };
    for addr in &addrs {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
    }
    Err(upstream_error(format!(
        "cannot connect to {host}:{}",
        request.port
    )))
}

fn upstream_error(what: String) -> Refusal {
    Refusal {
        status: 502,
        reason: "Bad Gateway",
        outcome: "upstream_error",
        body: format!("claude-code-api egress proxy: {what}"),
    }
}

/// Answers the client with `refusal`, logs and counts it.
async fn refuse(client: &mut UnixStream, owner: &Owner, target: Option<&str>, refusal: Refusal) {
    crate::metrics::agent_egress(refusal.outcome);
    tracing::warn!(
        tenant = %owner.tenant_id,
        session = %owner.session_id,
        target = target.unwrap_or("-"),
        outcome = refusal.outcome,
        status = refusal.status,
        "egress refused"
    );
    let answer = head::answer(refusal.status, refusal.reason, &refusal.body);
    let _ = client.write_all(&answer).await;
    let _ = client.shutdown().await;
}

/// Carries bytes both ways; each direction's end is passed on (half-close),
/// and the whole connection ends after `idle` without a byte either way.
async fn relay(client: UnixStream, upstream: TcpStream, idle: Duration) {
    let clock = Clock::new();
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let both = async {
        tokio::join!(
            pipe(client_read, upstream_write, &clock),
            pipe(upstream_read, client_write, &clock),
        )
    };
    tokio::select! {
        _ = both => {}
        () = clock.idle_for(idle) => {}
    }
}

async fn pipe(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, clock: &Clock) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                clock.touch();
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// When a connection last carried a byte.
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}
