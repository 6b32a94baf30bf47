//! Agent templates: list, get, reload from `TEMPLATES_DIR`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::envelope::{self, PageQuery};
use crate::error::ApiError;
use crate::security::auth::Caller;
use crate::templates::{Template, Templates};

pub async fn list_templates(
    req: HttpRequest,
    templates: web::Data<Templates>,
    _caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let all = templates.all();
    let total = all.len() as i64;
    let items: Vec<&Template> = all
        .values()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}

pub async fn get_template(
    req: HttpRequest,
    templates: web::Data<Templates>,
    _caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let template = templates
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no template named {:?}", name.as_str())))?;
    Ok(envelope::ok(&req, template))
}

/// Re-reads the folder; a broken file keeps the previous set and is a 422
/// naming the file and the field.
pub async fn reload_templates(
    req: HttpRequest,
    templates: web::Data<Templates>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let registry = templates.clone();
    let count = tokio::task::spawn_blocking(move || registry.reload())
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let names: Vec<String> = templates.all().keys().cloned().collect();
    Ok(envelope::ok(
        &req,
        json!({"loaded": count, "templates": names}),
    ))
}
