//! Agent templates: list, get, reload from `TEMPLATES_DIR`.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use serde::Serialize;
use utoipa::ToSchema;

use std::collections::BTreeMap;

use super::envelope::{self, Envelope};
use crate::api::views::templates::{listing, shown_to};
use crate::error::{ApiError, Problem};
use claude_code_api_core::templates::{Template, Templates};

/// Every agent template, keyed by name (each also carries its `name`), as
/// clients of the original iterate them; a dozen templates need no pages.
#[utoipa::path(
    get,
    path = "/api/v1/templates",
    tag = "templates",
    responses(
        (status = 200, description = "Every template, by name", body = Envelope<BTreeMap<String, Template>>),
    ),
)]
pub async fn list_templates(
    req: HttpRequest,
    templates: web::Data<Templates>,
    caller: Who,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(&req, listing(&templates, &caller)))
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
    caller: Who,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let template = templates.get(&name).ok_or_else(|| {
        ApiError::from(ServiceError::NotFound(format!(
            "no template named {:?}",
            name.as_str()
        )))
    })?;
    Ok(envelope::ok(&req, shown_to(&caller, template)))
}

/// What a reload found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// How many templates are now in force.
    loaded: usize,
    templates: Vec<String>,
    /// `loaded` again, as the original answers.
    count: usize,
    /// `templates` again, as the original answers.
    names: Vec<String>,
}

/// Re-reads the folder; a broken file keeps the previous set and is a 422
/// naming the file and the field. Admin keys only.
#[utoipa::path(
    post,
    path = "/api/v1/templates/reload",
    tag = "templates",
    responses(
        (status = 200, description = "The templates now in force", body = Envelope<Reloaded>),
        (status = 403, description = "Not the owner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A template file is broken; the previous set stays", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn reload_templates(
    req: HttpRequest,
    templates: web::Data<Templates>,
    caller: Who,
) -> Result<HttpResponse, ApiError> {
    caller.require_owner()?;
    let registry = templates.clone();
    let count = claude_code_api_core::blocking::run(move || registry.reload())
        .await?
        .map_err(|e| ApiError::from(ServiceError::Validation(e.to_string())))?;
    let names: Vec<String> = templates.all().keys().cloned().collect();
    Ok(envelope::ok(
        &req,
        Reloaded {
            loaded: count,
            count,
            templates: names.clone(),
            names,
        },
    ))
}
