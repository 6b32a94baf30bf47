//! The success envelope `{data, meta}` (lists add `pagination`) and the
//! page/limit query shared by every list.

use actix_web::{HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
pub use crate::identity::marks::request_id;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// What every success document carries besides its data.
#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    /// Also in the `X-Request-Id` header and the server's logs.
    pub request_id: String,
    /// When the response was made, RFC 3339 UTC.
    pub timestamp: String,
    /// The API version, `v1`.
    pub version: &'static str,
}

/// `{data, meta}`: every success body of the REST API.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub data: T,
    pub meta: Meta,
}

/// `{data: [...], meta, pagination}`: every list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub data: Vec<T>,
    pub meta: Meta,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    /// Items in the whole list.
    pub total: i64,
    pub page: i64,
    pub limit: i64,
    pub pages: i64,
}

pub fn meta(req: &HttpRequest) -> Meta {
    Meta {
        request_id: request_id(req),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: "v1",
    }
}

/// The `{data, meta}` document itself (to store it, e.g. for idempotent replay).
pub fn document(req: &HttpRequest, data: impl Serialize) -> serde_json::Value {
    serde_json::to_value(Envelope {
        data,
        meta: meta(req),
    })
    .unwrap_or_default()
}

/// `201 Created` with `data` and a `Location` naming the new resource.
pub fn created(req: &HttpRequest, location: &str, data: impl Serialize) -> HttpResponse {
    let mut res = self::data(req, actix_web::http::StatusCode::CREATED, data);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(location) {
        res.headers_mut()
            .insert(actix_web::http::header::LOCATION, value);
    }
    res
}

/// `{data, meta}` with the given status.
pub fn data(
    req: &HttpRequest,
    status: actix_web::http::StatusCode,
    data: impl Serialize,
) -> HttpResponse {
    HttpResponse::build(status).json(Envelope {
        data,
        meta: meta(req),
    })
}

pub fn ok(req: &HttpRequest, body: impl Serialize) -> HttpResponse {
    data(req, actix_web::http::StatusCode::OK, body)
}

/// `{data: [...], meta, pagination}`.
pub fn page<T: Serialize>(
    req: &HttpRequest,
    items: Vec<T>,
    page: &Page,
    total: i64,
) -> HttpResponse {
    HttpResponse::Ok().json(Paged {
        data: items,
        meta: meta(req),
        pagination: pagination(page, total),
    })
}

/// The `pagination` member of a list of `total` items.
pub fn pagination(page: &Page, total: i64) -> Pagination {
    let pages = if total == 0 {
        0
    } else {
        (total + page.limit - 1) / page.limit
    };
    Pagination {
        total,
        page: page.page,
        limit: page.limit,
        pages,
    }
}

/// Raw `?page=&limit=`: strings, so a bad value is our 422 and never a 400.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1_000_000)]
    pub page: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: i64,
    pub limit: i64,
}

impl Page {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.limit
    }
}

impl PageQuery {
    pub fn validate(&self) -> Result<Page, ApiError> {
        let page = match self.page.as_deref() {
            None => 1,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| {
                    ApiError::from(ServiceError::Validation(format!(
                        "page must be an integer from 1 to 1000000, got {raw:?}"
                    )))
                })?,
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::from(ServiceError::Validation(format!(
                        "limit must be an integer from 1 to {MAX_LIMIT}, got {raw:?}"
                    )))
                })?,
        };
        Ok(Page { page, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(page: Option<&str>, limit: Option<&str>) -> PageQuery {
        PageQuery {
            page: page.map(str::to_owned),
            limit: limit.map(str::to_owned),
        }
    }

    #[test]
    fn page_bounds() {
        assert_eq!(q(None, None).validate().unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(q(Some("3"), Some("100")).validate().unwrap().offset(), 200);
        for (p, l) in [
            (Some("0"), None),
            (Some("-1"), None),
            (Some("x"), None),
            (None, Some("0")),
            (None, Some("101")),
            (None, Some("1e3")),
        ] {
            assert!(
                matches!(
                    q(p, l).validate(),
                    Err(ApiError(ServiceError::Validation(_)))
                ),
                "{p:?} {l:?}"
            );
        }
    }
}

/// An optional integer field that also takes an integral float (`5.0`):
/// JSON Schema's `integer` counts it as one, and some clients send it so.
pub fn integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Some(value) = Option::<serde_json::Value>::deserialize(d)? else {
        return Ok(None);
    };
    let n = match &value {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("expected an integer in range, got {value}"))
        })
}

#[cfg(test)]
mod integer_tests {
    #[derive(serde::Deserialize, Debug)]
    struct Probe {
        #[serde(default, deserialize_with = "super::integer")]
        n: Option<u32>,
    }

    fn n(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Probe>(json)
            .map(|p| p.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_count_as_integers() {
        assert_eq!(n(r#"{"n": 5}"#), Ok(Some(5)));
        assert_eq!(n(r#"{"n": 5.0}"#), Ok(Some(5)));
        assert_eq!(n(r#"{"n": null}"#), Ok(None));
        assert_eq!(n("{}"), Ok(None));
        assert!(n(r#"{"n": 5.5}"#).is_err());
        assert!(n(r#"{"n": -1}"#).is_err());
        assert!(n(r#"{"n": 1e12}"#).is_err());
        assert!(n(r#"{"n": "5"}"#).is_err());
    }
}

/// A JSON body that must be an object. `web::Json` would also read a struct
/// from an array (`[null, null]` as positional fields), which no documented
/// schema allows.
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + Serialize + 'static> actix_web::FromRequest
    for JsonObject<T>
{
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        // Size, content type and syntax are checked as for any JSON body.
        let json = actix_web::web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move { object(json.await?.into_inner()).map(JsonObject) })
    }
}

/// The body of a request that starts a turn: a JSON object as
/// `JsonObject` takes it, allowed to be as large as a message with
/// `MAX_ATTACHMENTS_MB` of attachments in base64. With `FORM`, it may also
/// be `multipart/form-data`: a `message` part (text) and `files` parts,
/// each an image or a PDF (`api::message_form`).
pub struct TurnBody<T, const FORM: bool = true>(pub T);

impl<T, const FORM: bool> TurnBody<T, FORM> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: serde::de::DeserializeOwned + Serialize + 'static, const FORM: bool> actix_web::FromRequest
    for TurnBody<T, FORM>
{
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let attachments = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map_or(0, |s| s.services.settings.files.max_attachment_bytes);
        if FORM && super::message_form::is_form(req) {
            let form = actix_multipart::Multipart::new(req.headers(), payload.take());
            return Box::pin(async move {
                let value = super::message_form::read(form, attachments).await?;
                object(value).map(TurnBody)
            });
        }
        // Base64 takes four characters for three bytes.
        let limit = crate::state::JSON_LIMIT + attachments.div_ceil(3) * 4;
        if let Some(length) = declared_length(req).filter(|&length| length > limit && is_json(req))
        {
            let refused = payload.take();
            return Box::pin(async move {
                drain(refused, length).await;
                Err(crate::error::json_error(
                    actix_web::error::JsonPayloadError::OverflowKnownLength { length, limit },
                )
                .into())
            });
        }
        let json = actix_web::dev::JsonBody::<serde_json::Value>::new(req, payload, None, true)
            .limit(limit);
        Box::pin(async move {
            let value = json.await.map_err(crate::error::json_error)?;
            object(value).map(TurnBody)
        })
    }
}

/// A refused body up to this size is read (and dropped) before the 413 is
/// sent: a client still sending it then reads the answer instead of losing
/// it to the reset of a connection closed with unread data.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// How long a refused body is read at most.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// As `JsonBody` takes a body for JSON (`application/json`, `…+json`).
fn is_json(req: &HttpRequest) -> bool {
    actix_web::HttpMessage::mime_type(req)
        .ok()
        .flatten()
        .is_some_and(|mime| {
            mime.subtype().as_str() == "json" || mime.suffix().map(|s| s.as_str()) == Some("json")
        })
}

/// Reads and drops a refused body of `length` bytes (when not too large),
/// within `DRAIN_FOR`.
async fn drain(mut payload: actix_web::dev::Payload, length: usize) {
    use futures_util::StreamExt;
    if length > DRAIN_MAX_BYTES {
        return;
    }
    let reading = async {
        let mut read = 0usize;
        while let Some(Ok(chunk)) = payload.next().await {
            read += chunk.len();
            if read >= length {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_FOR, reading).await;
}

/// `value` as the body `T`: an object, of `T`'s shape, with no NUL in the
/// fields the server reads.
fn object<T: serde::de::DeserializeOwned + Serialize>(
    value: serde_json::Value,
) -> Result<T, actix_web::Error> {
    if !value.is_object() {
        return Err(ApiError::from(ServiceError::Validation(
            "the body must be a JSON object".into(),
        ))
        .into());
    }
    let body: T = serde_json::from_value(value)
        .map_err(|e| ApiError::from(ServiceError::Validation(e.to_string())))?;
    // Strings reach the CLI's command line and TEXT columns, where a
    // NUL cannot go (PostgreSQL refuses it): refused here, once, in
    // the fields the server reads (ignored extra fields may hold one).
    let read =
        serde_json::to_value(&body).map_err(|e| ApiError::from(ServiceError::internal(e)))?;
    if let Some(at) = nul_at(&read, String::new()) {
        return Err(ApiError::from(ServiceError::Validation(format!(
            "no string in the body may contain a NUL character (at {at:?})"
        )))
        .into());
    }
    Ok(body)
}

/// A value the server only passes on as JSON text (escaped, so a NUL in it
/// never reaches a command line or a column as such): a structured output's
/// JSON Schema.
const OPAQUE_JSON: &str = "/output_format/schema";

/// The JSON pointer of the first string (or key) holding a NUL, if any.
fn nul_at(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, format!("{at}/{i}"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = format!("{at}/{k}");
            if k.contains('\0') {
                Some(here)
            } else if here == OPAQUE_JSON {
                None
            } else {
                nul_at(v, here)
            }
        }),
        _ => None,
    }
}
