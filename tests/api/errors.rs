//! Every error path answers with an RFC 9457 problem and an X-Request-ID.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn unknown_routes_methods_and_bodies_are_problems() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app.get("/api/v1/nope", ALICE).send().await.unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app.get("/definitely/not/here", ALICE).send().await.unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .client
        .put(app.url("/api/v1/sessions"))
        .header("X-API-Key", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "method-not-allowed").await;

    // Malformed JSON is a 400; well-formed but wrong is a 422.
    let res = app
        .client
        .post(app.url("/api/v1/sessions"))
        .header("X-API-Key", ALICE)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "bad-request").await;
    let res = app
        .post("/api/v1/sessions", ALICE, json!({"nom": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    app.create_session(ALICE, "c").await;
    let res = app
        .post("/api/v1/sessions/c/chat", ALICE, json!({"message": "   "}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
    let res = app
        .post("/api/v1/sessions/c/chat", ALICE, json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation-error").await;
}

#[actix_web::test]
async fn oversize_bodies_are_413_even_when_chunked() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "big").await;
    // Larger than a turn's body may be (2 MiB and MAX_ATTACHMENTS_MB in base64).
    let huge = format!("{{\"message\": \"{}\"}}", "a".repeat(30 * 1024 * 1024));
    let res = app
        .client
        .post(app.url("/api/v1/sessions/big/chat"))
        .header("X-API-Key", ALICE)
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    // A declared length past the limit: the body is read and dropped, so
    // the client gets the whole answer.
    assert_problem(res, 413, "payload-too-large").await;
    // Chunked: no Content-Length, the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = app
        .client
        .post(app.url("/api/v1/sessions/big/chat"))
        .header("X-API-Key", ALICE)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_early_problem(res, 413, "payload-too-large").await;
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn_with(Options::fake()).await;
    let res = app
        .get("/api/v1/sessions", ALICE)
        .header("X-Request-ID", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "my-trace-42");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["meta"]["request_id"], "my-trace-42");
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(!res.headers()["x-request-id"].to_str().unwrap().is_empty());
}
