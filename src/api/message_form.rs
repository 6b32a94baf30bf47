//! A chat's or job's message sent as `multipart/form-data`: a `message`
//! part (the text, required) and `files` parts (images and PDFs), read
//! into the JSON body the JSON form would have been (`message` as blocks,
//! the files in base64).

use actix_multipart::Multipart;
use actix_web::HttpRequest;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::error::ApiError;
use claude_code_api_core::domain::attachment::{sniff, MAX_BLOCKS};
use claude_code_api_core::error::ServiceError;
use claude_code_api_core::services::turns::MAX_MESSAGE_BYTES;

/// Whether the request's body is a form.
pub fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// The form as the JSON body `{"message": [blocks]}`; files beyond
/// `attachments` bytes together are a 413, a file of another type a 415.
pub async fn read(mut form: Multipart, attachments: usize) -> Result<Value, ApiError> {
    let mut text: Option<String> = None;
    let mut blocks: Vec<Value> = Vec::new();
    let mut total = 0usize;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(malformed)?;
        let name = field.name().unwrap_or_default().to_owned();
        let limit = match name.as_str() {
            "message" if text.is_some() => {
                return Err(invalid("send one `message` part"));
            }
            "message" => MAX_MESSAGE_BYTES,
            "files" if blocks.len() + 1 >= MAX_BLOCKS => {
                return Err(invalid(&format!(
                    "at most {} files: a message has at most {MAX_BLOCKS} blocks, its text included",
                    MAX_BLOCKS - 1
                )));
            }
            "files" => attachments.saturating_sub(total),
            other => {
                return Err(invalid(&format!(
                    "unexpected form field {other:?}: send `message` and `files`"
                )))
            }
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(malformed)?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::from(ServiceError::PayloadTooLarge(
                    match name.as_str() {
                        "message" => {
                            format!("the message is larger than {MAX_MESSAGE_BYTES} bytes")
                        }
                        _ => format!(
                            "the message's files are larger than MAX_ATTACHMENTS_MB ({} MiB)",
                            attachments / (1024 * 1024)
                        ),
                    },
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == "message" {
            text = Some(
                String::from_utf8(bytes)
                    .map_err(|_| invalid("the `message` part must be UTF-8"))?,
            );
            continue;
        }
        total += bytes.len();
        let media_type = sniff(&bytes).ok_or_else(|| {
            ApiError::from(ServiceError::UnsupportedMediaType(format!(
                "file {:?} is not an image (PNG, JPEG, GIF, WebP) or a PDF",
                field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .unwrap_or("")
            )))
        })?;
        let kind = if media_type.starts_with("image/") {
            "image"
        } else {
            "document"
        };
        blocks.push(json!({
            "type": kind,
            "source": {
                "type": "base64",
                "media_type": media_type,
                "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
            },
        }));
    }
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Err(invalid("a `message` part with text is required"));
    };
    blocks.push(json!({"type": "text", "text": text}));
    Ok(json!({ "message": blocks }))
}

fn invalid(message: &str) -> ApiError {
    ApiError::from(ServiceError::Validation(message.to_owned()))
}

fn malformed(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::from(ServiceError::BadRequest(format!(
        "malformed multipart body: {e}"
    )))
}
