//! Any node answers any request: in a cluster, a request for a session
//! whose live lease another node holds is forwarded to that node, streamed
//! both ways (SSE and downloads as they come, uploads as they arrive), and
//! signed with `CLUSTER_SECRET` (`security::cluster_auth`). The node that
//! receives a forwarded request runs it and never forwards it again.
//!
//! When the owner cannot be reached (it died, or is draining and stopped
//! listening) or answers 503 (it is draining and runs nothing new), the
//! request waits for the owner's lease to be released or
//! to run out, then runs here, taking the session over. A body up to
//! `JSON_LIMIT` is kept for that second try; a larger upload is streamed
//! once and fails with the owner.

use claude_code_api_core::error::ServiceError;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody, SizedStream};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::identity::marks::Forwarded;
use crate::state::AppState;
use claude_code_api_core::cluster::Node;
use claude_code_api_core::security::auth::Resolved;
use claude_code_api_core::security::cluster_auth::{self, AUTH_HEADER, CLIENT_HEADER, FROM_HEADER};

/// How often a request waiting for an unreachable owner's lease looks again.
const OWNER_POLL: Duration = Duration::from_millis(200);

/// Hop-by-hop headers (RFC 9110 §7.6.1) and ours: never passed on.
fn passes(name: &header::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    ) && !name.as_str().starts_with("x-cluster-")
}

/// Whether this request was forwarded by another node: its signature must
/// verify, else the cluster headers are ignored (a client cannot claim it).
pub fn verify(req: &ServiceRequest, node: &Node) -> Option<Forwarded> {
    let cluster = node.cluster()?;
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (auth, from) = (text(AUTH_HEADER)?, text(FROM_HEADER)?);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    cluster_auth::verify(&cluster.secret.0, auth, req.method().as_str(), path, from).then(|| {
        Forwarded {
            client_addr: text(CLIENT_HEADER).map(str::to_owned),
        }
    })
}

/// The session a path under `/api/v1/sessions/{name}` names, decoded.
fn session_name(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix(crate::state::API_V1)?
        .strip_prefix("/sessions/")?;
    let raw = rest.split('/').next().filter(|s| !s.is_empty())?;
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// The OpenAI surface's completion route (its session is named in the
/// request; see `api::openai`).
const OPENAI_COMPLETIONS: &str = "/v1/chat/completions";

/// The session an OpenAI completion talks to, as `api::openai` picks it:
/// `X-Session`, else the body's `user`, else the default session. A request
/// the handler will refuse names some session all the same (it is refused
/// wherever it runs).
fn completion_session(headers: &HeaderMap, body: &Bytes) -> String {
    if let Some(name) = headers.get("x-session").and_then(|v| v.to_str().ok()) {
        return name.trim().to_owned();
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("user").and_then(|u| u.as_str()).map(str::to_owned))
        .unwrap_or_else(|| super::views::openai::DEFAULT_SESSION.to_owned())
}

/// Where the session's live lease is held, when that is another node:
/// `Some(its advertise URL)` (`None` inside when it registered none).
async fn owner(
    state: &AppState,
    tenant: &str,
    name: &str,
) -> Result<Option<Option<String>>, ApiError> {
    Ok(
        claude_code_api_core::services::nodes::owner_elsewhere(&state.services, tenant, name)
            .await?,
    )
}

pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let route = state.as_ref().and_then(|state| {
        let node = &state.services.node;
        if !node.is_clustered() || req.extensions().contains::<Forwarded>() {
            return None;
        }
        // A session's event stream is served by any node, from storage and
        // the database's notifications (see `api::control`).
        if req.method() == actix_web::http::Method::GET && req.path().ends_with("/events") {
            return None;
        }
        if req.method() == actix_web::http::Method::POST && req.path() == OPENAI_COMPLETIONS {
            return Some(None);
        }
        session_name(req.path()).map(Some)
    });
    let (Some(state), Some(named)) = (state, route) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // The key's tenant, or the console sign-in's (a browser's API calls).
    let resolved = req
        .extensions()
        .get::<Resolved>()
        .map(|r| r.caller.tenant.0.clone());
    let tenant = match resolved {
        Some(tenant) => Some(tenant),
        None => crate::identity::console_sign_in::caller_from_cookie(req.request().clone())
            .await
            .ok()
            .map(|caller| caller.tenant.0),
    };
    // Unauthenticated: the handler here says so.
    let Some(tenant) = tenant else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // A body small enough to keep is read now: the request can then run here
    // if the owner turns out to be gone (and an OpenAI completion names its
    // session in it).
    let kept = match declared_length(req.headers()) {
        Some(n) if n <= crate::state::JSON_LIMIT => Some(read_body(req.take_payload()).await?),
        _ => None,
    };
    let name = match named {
        Some(name) => name,
        None => {
            let Some(name) = kept
                .as_ref()
                .map(|body| completion_session(req.headers(), body))
            else {
                // Too big to be a completion: the handler refuses it here.
                return Ok(next.call(req).await?.map_into_boxed_body());
            };
            name
        }
    };
    let run_here = |mut req: ServiceRequest, kept: Option<Bytes>| {
        if let Some(bytes) = kept {
            req.set_payload(Payload::from(bytes));
        }
        next.call(req)
    };
    let Some(mut url) = owner(&state, &tenant, &name).await? else {
        return Ok(run_here(req, kept).await?.map_into_boxed_body());
    };
    // A dead owner's lease runs out within a lease's time; a draining one
    // lets it go once its running turns end, within its grace period.
    let deadline = Instant::now()
        + state.services.node.lease_ttl()
        + state.services.settings.sessions.shutdown_grace
        + Duration::from_secs(2);
    loop {
        // An owner with no address (its row was dropped as dead while its
        // lease runs) is as unreachable as one that does not answer.
        let tried = match url.clone() {
            Some(base) => {
                let body = match &kept {
                    Some(bytes) => reqwest::Body::from(bytes.clone()),
                    None => streamed_body(req.take_payload()),
                };
                let mut sent = forward(&state.services.node, &req, &base, body).await;
                // Sent once more at once when it surely did not arrive (no
                // connection) or repeating it is harmless (a read): a pooled
                // connection may have been closed by the owner as it was reused.
                let retry = match (&sent, &kept) {
                    (Err(e), Some(bytes))
                        if e.is_connect() || matches!(req.method().as_str(), "GET" | "HEAD") =>
                    {
                        Some(bytes.clone())
                    }
                    _ => None,
                };
                if let Some(bytes) = retry {
                    sent = forward(
                        &state.services.node,
                        &req,
                        &base,
                        reqwest::Body::from(bytes),
                    )
                    .await;
                }
                match sent {
                    // A 503 of the owner means the request did not run there:
                    // it is draining, or the session just left it. A kept
                    // body is sent on to whoever holds the session next.
                    Ok(res)
                        if res.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
                            && kept.is_some() =>
                    {
                        format!("{base}: answered 503 (draining or handing the session over)")
                    }
                    Ok(res) => {
                        let (http_req, _) = req.into_parts();
                        return Ok(ServiceResponse::new(http_req, res));
                    }
                    Err(e) => format!("{base}: {e}"),
                }
            }
            None => "it has no advertised address".to_owned(),
        };
        tracing::warn!(owner = %tried, "cannot reach the session's node; waiting for its lease");
        if kept.is_none() {
            return Err(ApiError::from(ServiceError::Unavailable(format!(
                "the node running this session cannot be reached ({tried}); retry"
            )))
            .into());
        }
        // Wait for the unreachable owner's lease to go (released by its
        // drain, or run out with its heartbeat), then run here or forward
        // to whoever took it meanwhile.
        loop {
            if Instant::now() >= deadline {
                return Err(ApiError::from(ServiceError::Unavailable(
                    "the node running this session cannot be reached; retry".into(),
                ))
                .into());
            }
            tokio::time::sleep(OWNER_POLL).await;
            match owner(&state, &tenant, &name).await? {
                None => return Ok(run_here(req, kept).await?.map_into_boxed_body()),
                Some(now) if now != url => {
                    url = now;
                    break;
                }
                Some(_) => {}
            }
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    if !headers.contains_key(header::CONTENT_LENGTH) {
        // No body at all (a GET) or a chunked one (read as a stream).
        return (!headers.contains_key(header::TRANSFER_ENCODING)).then_some(0);
    }
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn read_body(mut payload: Payload) -> Result<Bytes, actix_web::Error> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(body.freeze())
}

/// The request's body as a stream reqwest can send: read on this thread
/// (actix's payload stays here), handed over through a small channel.
fn streamed_body(mut payload: Payload) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Sends the request to the node at `base`; its answer, streamed back.
async fn forward(
    node: &Node,
    req: &ServiceRequest,
    base: &str,
    body: reqwest::Body,
) -> Result<HttpResponse, reqwest::Error> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut out = node.client().request(method, format!("{base}{path}"));
    for (name, value) in req.headers().iter().filter(|(n, _)| passes(n)) {
        out = out.header(name.as_str(), value.as_bytes());
    }
    let secret = node.cluster().map_or("", |c| c.secret.0.as_str());
    let me = node.instance_id();
    out = out
        .header(FROM_HEADER, me)
        .header(
            AUTH_HEADER,
            cluster_auth::sign(secret, req.method().as_str(), path, me),
        )
        .body(body);
    if let Some(addr) = req.peer_addr() {
        out = out.header(CLIENT_HEADER, addr.ip().to_string());
    }
    let res = out.send().await?;
    let status = actix_web::http::StatusCode::from_u16(res.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut back = HttpResponse::build(status);
    for (name, value) in res.headers() {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_str().as_bytes()),
            header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            if passes(&n) {
                back.append_header((n, v));
            }
        }
    }
    let length = res.content_length();
    let stream = res
        .bytes_stream()
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    Ok(match length {
        Some(n) => back.body(SizedStream::new(n, stream)),
        None => back.streaming(stream),
    })
}
