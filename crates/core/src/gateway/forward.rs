//! Forwarding one request: token check, the allowlist, the real credential
//! instead of the token, the body streamed up, the answer streamed down
//! through the usage tap, and the call recorded (and, made outside any
//! turn, charged) once the answer has ended. The HTTP listener that calls
//! this lives at the edge (`gateway_listener` of the server binary).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use serde_json::json;

use super::allowlist::{self, Route};
use super::usage::{CallUsage, UsageTap};
use super::{Grant, ModelGateway};
use crate::db;
use crate::db::models::model_call::{self, DirectCharge, NewModelCall};

/// How much of a refused target is logged (the agent chooses it).
const LOGGED_TARGET_CHARS: usize = 200;

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];
/// Headers of the CLI that the gateway replaces or drops: its token, and
/// compression (the tap reads the answer as it passes).
const REPLACED: &[&str] = &["x-api-key", "authorization", "accept-encoding"];

/// A request the gateway answers itself, worded as the model API words its
/// errors so the CLI reports it as such.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    kind: &'static str,
    message: &'static str,
}

impl Refused {
    fn new(status: u16, kind: &'static str, message: &'static str) -> Refused {
        Refused {
            status,
            kind,
            message,
        }
    }

    /// The JSON body of the answer.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "type": "error",
            "error": {"type": self.kind, "message": self.message},
        })
    }
}

/// One request of a CLI process, as it arrived.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Header names (lower case) and values, as sent.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The body, streamed up as it arrives.
    pub body: reqwest::Body,
}

/// The model API's answer, to stream back to the CLI.
pub struct Forwarded {
    pub status: u16,
    /// The answer's headers, hop-by-hop ones left out.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: ByteStream,
}

/// The per-process token the CLI presents, as an API key or a bearer token.
fn presented_token<'a>(headers: &[(&'a str, &'a [u8])]) -> Option<&'a str> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    if let Some(key) = header("x-api-key") {
        return Some(key);
    }
    header("authorization").and_then(|v| v.strip_prefix("Bearer "))
}

pub async fn forward(gateway: &ModelGateway, req: Incoming<'_>) -> Result<Forwarded, Refused> {
    let Some(grant) = presented_token(&req.headers).and_then(|t| gateway.lookup(t)) else {
        return Err(Refused::new(
            401,
            "authentication_error",
            "not a token of a live CLI process of this server",
        ));
    };
    let route = match allowlist::check(req.method, req.path, req.query) {
        Ok(route) => route,
        Err(refusal) => {
            let target: String = req
                .path
                .chars()
                .chain(
                    req.query
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default()
                        .chars(),
                )
                .take(LOGGED_TARGET_CHARS)
                .collect();
            tracing::warn!(
                tenant = %grant.tenant_id,
                session = grant.session_id.as_deref().unwrap_or("-"),
                method = %req.method,
                path = ?target,
                reason = refusal.as_str(),
                "model gateway refused a request of a CLI process"
            );
            crate::metrics::gateway_refused(refusal.as_str());
            return Err(Refused::new(
                403,
                "permission_error",
                "the model gateway forwards only POST /v1/messages and POST /v1/messages/count_tokens",
            ));
        }
    };
    if grant.priming.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(priming_answer(route));
    }
    let Some(credential) = gateway.credential_for(&grant.tenant_id) else {
        return Err(Refused::new(
            401,
            "authentication_error",
            "the server has no model credential: run `claude-code-api login`, or set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN",
        ));
    };
    let (auth_name, auth_value) = match credential.header().await {
        Ok(header) => header,
        Err(e) => {
            tracing::error!(error = %e, "the model credential cannot be read");
            return Err(Refused::new(
                401,
                "authentication_error",
                "the server's model credential cannot be read",
            ));
        }
    };

    // Checked by the allowlist, so forwarded as it came.
    let url = match req.query {
        Some(query) => format!("{}{}?{query}", gateway.inner.upstream, req.path),
        None => format!("{}{}", gateway.inner.upstream, req.path),
    };
    let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return Err(Refused::new(405, "invalid_request_error", "method")),
    };
    let mut upstream = gateway.inner.client.request(method, &url);
    for (name, value) in &req.headers {
        let name = *name;
        // The length goes up with the body: a length-delimited body is sent
        // as it comes, where a chunked one would end in a small write that
        // waits on the peer's delayed ACK (about 40 ms a call).
        if (HOP_BY_HOP.contains(&name) && name != "content-length") || REPLACED.contains(&name) {
            continue;
        }
        upstream = upstream.header(name, *value);
    }
    for (name, value) in &gateway.inner.custom_headers {
        upstream = upstream.header(name.as_str(), value.as_str());
    }
    upstream = upstream.header(auth_name, auth_value);

    let answer = match upstream.body(req.body).send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "the model API cannot be reached");
            return Err(Refused::new(
                502,
                "api_error",
                "the model API cannot be reached from the server",
            ));
        }
    };

    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    // Only Messages API calls are model calls; token counting is free.
    if route != Route::Messages {
        return Ok(Forwarded {
            status,
            headers,
            body: Box::pin(answer.bytes_stream()),
        });
    }
    let sse = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let call = grant.meter.begin_call();
    let recorder = Recorder {
        gateway: gateway.clone(),
        grant,
        status: i32::from(status),
        call,
    };
    Ok(Forwarded {
        status,
        headers,
        body: Box::pin(Tapped {
            inner: Box::pin(answer.bytes_stream()),
            tap: Some(UsageTap::new(sse)),
            recorder: Some(recorder),
        }),
    })
}

/// Stores the call once its answer has ended (or its reader went away).
struct Recorder {
    gateway: ModelGateway,
    grant: Grant,
    status: i32,
    /// This call's entry in the process's meter.
    call: u64,
}

impl Recorder {
    /// Stores the call; what the meter hands back (the call ran outside any
    /// turn, wholly or in part) is charged to the tenant with it.
    fn record(self, usage: CallUsage) {
        let charge = self
            .grant
            .meter
            .finish_call(self.call, &usage)
            .map(|unpaid| DirectCharge {
                cost_micros: self.gateway.cost_micros(std::slice::from_ref(&unpaid)),
                input_tokens: unpaid.all_input_tokens(),
                output_tokens: unpaid.output_tokens,
            })
            .unwrap_or_default();
        crate::metrics::charged_outside_turns(charge.cost_micros);
        let call = NewModelCall {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: self.grant.tenant_id,
            session_id: self.grant.session_id,
            model: usage.model,
            status: self.status,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            created_at: db::now(),
            charged_micros: charge.cost_micros,
        };
        let pool = self.gateway.inner.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = db::run(&pool, move |c| model_call::record(c, &call, charge)).await {
                tracing::warn!(error = %e, charged_micros = charge.cost_micros, "cannot record a model call");
            }
        });
    }
}

/// The gateway's own answer to a call of the priming exchange: an empty
/// reply of no tokens (streamed, as the CLI asks), or a count of none.
fn priming_answer(route: Route) -> Forwarded {
    let (content_type, body) = match route {
        Route::Messages => {
            let events = [
                (
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_priming", "type": "message", "role": "assistant", "model": "priming", "content": [], "stop_reason": null, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
                ),
                (
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
                ),
                (
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ),
                (
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 0}}),
                ),
                ("message_stop", json!({"type": "message_stop"})),
            ];
            let body: String = events
                .iter()
                .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n"))
                .collect();
            ("text/event-stream", body)
        }
        _ => ("application/json", json!({"input_tokens": 0}).to_string()),
    };
    Forwarded {
        status: 200,
        headers: vec![("content-type".to_owned(), content_type.as_bytes().to_vec())],
        body: Box::pin(futures_util::stream::once(
            async move { Ok(Bytes::from(body)) },
        )),
    }
}

pub type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The answer's body, read by the usage tap on its way to the CLI.
struct Tapped {
    inner: ByteStream,
    tap: Option<UsageTap>,
    recorder: Option<Recorder>,
}

impl Tapped {
    fn finish(&mut self) {
        if let (Some(tap), Some(recorder)) = (self.tap.take(), self.recorder.take()) {
            recorder.record(tap.finish());
        }
    }
}

impl Stream for Tapped {
    type Item = reqwest::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                let this = &mut *self;
                if let (Some(tap), Some(recorder)) = (this.tap.as_mut(), this.recorder.as_ref()) {
                    tap.feed(chunk);
                    // Kept current, so a turn cut mid-answer is charged what
                    // the model already reported.
                    recorder.grant.meter.update(recorder.call, tap.usage());
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        self.finish();
    }
}
