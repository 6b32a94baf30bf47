//! Agent templates: list, get, reload from `TEMPLATES_DIR`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery, Paged};
use crate::error::{ApiError, Problem};
use crate::security::auth::Caller;
use crate::templates::{Template, Templates};

/// The agent templates, by name.
#[utoipa::path(
    get,
    path = "/api/v1/templates",
    tag = "templates",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of templates", body = Paged<Template>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_templates(
    req: HttpRequest,
    templates: web::Data<Templates>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let all = templates.all();
    let total = all.len() as i64;
    let items: Vec<Template> = all
        .values()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .map(|t| shown_to(&caller, t.clone()))
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}

/// One template.
#[utoipa::path(
    get,
    path = "/api/v1/templates/{name}",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name (its file stem)")),
    responses(
        (status = 200, description = "The template", body = Envelope<Template>),
        (status = 404, description = "No template of that name", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_template(
    req: HttpRequest,
    templates: web::Data<Templates>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let template = templates
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no template named {:?}", name.as_str())))?;
    Ok(envelope::ok(&req, shown_to(&caller, template)))
}

/// Credentials in full to admin keys only.
fn shown_to(caller: &Caller, template: Template) -> Template {
    if caller.is_admin() {
        template
    } else {
        template.redacted()
    }
}

/// What a reload found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// How many templates are now in force.
    loaded: usize,
    templates: Vec<String>,
}

/// Re-reads the folder; a broken file keeps the previous set and is a 422
/// naming the file and the field. Admin keys only.
#[utoipa::path(
    post,
    path = "/api/v1/templates/reload",
    tag = "templates",
    responses(
        (status = 200, description = "The templates now in force", body = Envelope<Reloaded>),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A template file is broken; the previous set stays", body = Problem, content_type = "application/problem+json"),
    ),
)]
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
        Reloaded {
            loaded: count,
            templates: names,
        },
    ))
}
