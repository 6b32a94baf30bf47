//! Socket settings shared by the server's listeners (the API, the model
//! gateway).

/// Streamed answers (SSE events, the model's tokens through the gateway)
/// go out as they come: with Nagle's algorithm a small write after another
/// waits for the client's delayed ACK, about 40 ms each time.
pub fn no_delay(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}
