//! The success envelope `{data, meta}` (lists add `pagination`) and the
//! page/limit query shared by every list.

use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::middleware::RequestId;
use crate::error::ApiError;

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
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    Meta {
        request_id,
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
                    ApiError::Validation(format!(
                        "page must be an integer from 1 to 1000000, got {raw:?}"
                    ))
                })?,
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::Validation(format!(
                        "limit must be an integer from 1 to {MAX_LIMIT}, got {raw:?}"
                    ))
                })?,
        };
        Ok(Page { page, limit })
    }
}

/// RFC 3339 UTC with microseconds, as every timestamp in the API.
pub fn timestamp(t: &NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
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
                matches!(q(p, l).validate(), Err(ApiError::Validation(_))),
                "{p:?} {l:?}"
            );
        }
    }
}
