//! MCP's older HTTP+SSE transport: the relay opens the server's event
//! stream (a GET) once per CLI process, learns from its `endpoint` event
//! where to POST messages, and finds each answer among the stream's
//! `message` events. The open stream (a link) is kept here under an id the
//! session keeps as its MCP session, and closed with the CLI process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::MAX_ANSWER_BYTES;
use super::{check_target, events, is_answer, pinned_client, with_headers, without_url};
use crate::db::models::TenantId;
use crate::services::Services;

/// Most event streams open at once, over all sessions.
const MAX_LINKS: usize = 1024;

/// The open links by id.
#[derive(Clone, Default)]
pub(super) struct Links(Arc<Mutex<HashMap<String, Arc<Link>>>>);

impl Links {
    fn get(&self, id: &str) -> Option<Arc<Link>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Closes the link (its stream ends once no message waits on it).
    pub(super) fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn insert(&self, link: Arc<Link>) -> Result<String, String> {
        let mut links = self.0.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|_, link| link.open());
        if links.len() >= MAX_LINKS {
            return Err("too many MCP event streams are open on this server".into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        links.insert(id.clone(), link);
        Ok(id)
    }
}

/// One open event stream and where its messages are posted.
struct Link {
    endpoint: url::Url,
    client: reqwest::Client,
    shared: Arc<Shared>,
    _reader: Reader,
}

/// The stream's reading task, stopped when its link is dropped (or when
/// opening it fails).
struct Reader(tokio::task::AbortHandle);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Link {
    fn open(&self) -> bool {
        self.shared.ended().is_none()
    }
}

/// What the stream's reader and the senders share.
#[derive(Default)]
struct Shared {
    /// Senders waiting for the answer to a request, by its id as JSON text.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Why the stream ended, once it has.
    ended: Mutex<Option<String>>,
}

impl Shared {
    fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn end(&self, why: String) {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        // The waiting senders are dropped: each learns the stream ended.
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn answer(&self, value: Value) {
        let Some(id) = value.get("id") else { return };
        if !is_answer(&value, id) {
            return;
        }
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id.to_string());
        if let Some(sender) = waiting {
            let _ = sender.send(value);
        }
    }
}

/// Stops waiting for an answer when its sender gives up (a timeout).
struct Waiting<'a> {
    shared: &'a Shared,
    key: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

pub(super) async fn send(
    services: &Services,
    links: &Links,
    tenant: &TenantId,
    server: &Value,
    message: &Value,
    mcp_session: Option<String>,
) -> Result<(Value, Option<String>), String> {
    let url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Checked at every message: an allowlist changed since holds at once.
    let (url, host, addrs) = check_target(services, tenant, url).await?;
    let (link_id, link) = match mcp_session {
        Some(id) => {
            let link = links
                .get(&id)
                .ok_or("the MCP server's event stream was closed")?;
            if let Some(why) = link.shared.ended() {
                links.close(&id);
                return Err(format!("the MCP server's event stream ended: {why}"));
            }
            (id, link)
        }
        None => {
            let client = pinned_client(&host, &addrs)?;
            let link = Arc::new(open(services, tenant, server, url, client).await?);
            (links.insert(link.clone())?, link)
        }
    };
    // Request ids are unique on the link: the session numbers them
    // (`actors::session::mcp`).
    let id = message
        .get("id")
        .filter(|_| message.get("method").is_some());
    let (receiver, waiting) = match id {
        Some(id) => {
            let (sender, receiver) = oneshot::channel();
            let key = id.to_string();
            link.shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), sender);
            (
                Some(receiver),
                Some(Waiting {
                    shared: &link.shared,
                    key,
                }),
            )
        }
        None => (None, None),
    };
    let request = link
        .client
        .post(link.endpoint.clone())
        .header("content-type", "application/json")
        .body(message.to_string());
    let response = with_headers(services, tenant, server, request)
        .await?
        .send()
        .await
        .map_err(|e| format!("cannot reach the MCP server: {}", without_url(e)))?;
    if !response.status().is_success() {
        return Err(format!("the MCP server answered {}", response.status()));
    }
    let answer = match receiver {
        // A notification or a response: accepted, nothing comes back.
        None => json!({"jsonrpc": "2.0", "result": {}}),
        Some(receiver) => receiver.await.map_err(|_| {
            format!(
                "the MCP server's event stream ended: {}",
                link.shared.ended().unwrap_or_default()
            )
        })?,
    };
    drop(waiting);
    Ok((answer, Some(link_id)))
}

/// Opens the server's event stream and waits for its `endpoint` event,
/// which must name the same origin.
async fn open(
    services: &Services,
    tenant: &TenantId,
    server: &Value,
    url: url::Url,
    client: reqwest::Client,
) -> Result<Link, String> {
    let request = client
        .get(url.clone())
        .header("accept", "text/event-stream");
    let response = with_headers(services, tenant, server, request)
        .await?
        .send()
        .await
        .map_err(|e| format!("cannot reach the MCP server: {}", without_url(e)))?;
    if !response.status().is_success() {
        return Err(format!("the MCP server answered {}", response.status()));
    }
    let shared = Arc::new(Shared::default());
    let (endpoint_tx, endpoint_rx) = oneshot::channel();
    let reader = Reader(
        tokio::spawn(read(response, url.clone(), shared.clone(), endpoint_tx)).abort_handle(),
    );
    let endpoint = endpoint_rx.await.map_err(|_| {
        format!(
            "the MCP server's event stream named no endpoint: {}",
            shared.ended().unwrap_or_default()
        )
    })?;
    let link = Link {
        endpoint,
        client,
        shared,
        _reader: reader,
    };
    if link.endpoint.origin() != url.origin() {
        return Err("the MCP server's endpoint is on another origin".into());
    }
    Ok(link)
}

/// Reads the stream until it ends: the endpoint first, then answers.
async fn read(
    response: reqwest::Response,
    base: url::Url,
    shared: Arc<Shared>,
    endpoint: oneshot::Sender<url::Url>,
) {
    let mut endpoint = Some(endpoint);
    let mut stream = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let why = loop {
        let chunk = match stream.next().await {
            None => break "the server closed it".to_owned(),
            Some(Err(e)) => break without_url(e),
            Some(Ok(chunk)) => chunk,
        };
        buffer.extend_from_slice(&chunk);
        while let Some(event) = events::next(&mut buffer) {
            match event.name.as_str() {
                "endpoint" => {
                    if let (Some(sender), Ok(url)) = (endpoint.take(), base.join(event.data.trim()))
                    {
                        let _ = sender.send(url);
                    }
                }
                _ => {
                    if let Ok(value) = serde_json::from_str::<Value>(&event.data) {
                        shared.answer(value);
                    }
                }
            }
        }
        if buffer.len() > MAX_ANSWER_BYTES {
            break "an event is too large".to_owned();
        }
    };
    shared.end(why);
}
