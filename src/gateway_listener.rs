//! The model gateway's HTTP listener: loopback TCP for unconfined processes
//! and a unix socket for sandboxed ones. It turns each request into the
//! core's `gateway::forward::Incoming` and streams the answer back; the
//! rules (tokens, the allowlist, credentials, metering) are the core's.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use claude_code_api_core::gateway::forward::{self, Incoming};
use claude_code_api_core::gateway::ModelGateway;
use futures_util::StreamExt;

/// How long a CLI's idle connection is kept open.
const IDLE_CONNECTION: std::time::Duration = std::time::Duration::from_secs(600);

/// Serves `gateway` on `listener` (loopback) until stopped, and on `unix`
/// too when given (the socket sandboxed processes reach it by).
pub fn serve(
    gateway: &ModelGateway,
    listener: TcpListener,
    unix: Option<std::os::unix::net::UnixListener>,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    gateway.set_url(format!("http://{addr}"));
    let data = web::Data::new(gateway.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(relay))
    })
    .on_connect(crate::net::no_delay)
    // The CLI keeps its connection between model calls. Closing an idle one
    // here races the CLI's next call on it, which then fails at once with
    // ECONNRESET; the CLI closes it first, or its process ends.
    .keep_alive(IDLE_CONNECTION)
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?;
    if let Some(unix) = unix {
        server = server.listen_uds(unix)?;
    }
    Ok(server.run())
}

async fn relay(
    req: HttpRequest,
    mut payload: web::Payload,
    gateway: web::Data<ModelGateway>,
) -> HttpResponse {
    // The body goes up as it arrives: the payload is not Send, so a local
    // task hands its chunks over a channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    let incoming = Incoming {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect(),
        body: reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    };
    match forward::forward(&gateway, incoming).await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = HttpResponse::build(status);
            for (name, value) in answer.headers {
                response.append_header((name, value));
            }
            response.streaming(answer.body)
        }
        Err(refused) => {
            let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::BAD_GATEWAY);
            HttpResponse::build(status).json(refused.body())
        }
    }
}
