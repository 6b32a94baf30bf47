//! Pipelines: a graph of jobs handed over at once, each step started when
//! the steps it depends on end, fanned out over a structured result with
//! `for_each`, and reported by one signed webhook at the end.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};

use super::envelope::{self, Envelope, PageQuery, Paged};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::services::pipelines::document::PipelineData;
use claude_code_api_core::services::pipelines::{self, NewPipeline};

/// Starts a pipeline: checked whole before anything runs (a cycle, an
/// unknown or duplicate step id, a template naming a step the step does
/// not depend on, a bad `for_each` are each a 422 naming it), then stored;
/// its first steps start at once.
#[utoipa::path(
    post,
    path = "/api/v1/pipelines",
    tag = "pipelines",
    request_body = NewPipeline,
    responses(
        (status = 201, description = "Stored and started; `Location` names it", body = Envelope<PipelineData>),
        (status = 413, description = "A step's message is larger than PIPELINE_MAX_MESSAGE_KB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The graph, a step or a template is invalid (the detail names it), or the webhook URL is not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant has PIPELINE_MAX_RUNNING_PER_TENANT pipelines running", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_pipeline(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<NewPipeline>,
) -> Result<HttpResponse, ApiError> {
    let data = pipelines::create(&state.services, &who, body.into_inner()).await?;
    let location = format!("/api/v1/pipelines/{}", data.id);
    Ok(envelope::created(&req, &location, data))
}

/// The tenant's pipelines, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/pipelines",
    tag = "pipelines",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of pipelines", body = Paged<PipelineData>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_pipelines(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (items, total) = pipelines::list(&state.services, &who, page.offset(), page.limit).await?;
    Ok(envelope::page(&req, items, &page, total))
}

/// One pipeline: its status, and each step's state, reason, jobs and cost.
#[utoipa::path(
    get,
    path = "/api/v1/pipelines/{id}",
    tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id")),
    responses(
        (status = 200, description = "The pipeline", body = Envelope<PipelineData>),
        (status = 404, description = "No such pipeline in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_pipeline(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(
        &req,
        pipelines::get(&state.services, &who, &id).await?,
    ))
}

/// Cancels what has not finished: its queued and running jobs are
/// cancelled, its waiting steps never start. An ended pipeline is a 409.
#[utoipa::path(
    post,
    path = "/api/v1/pipelines/{id}/cancel",
    tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id")),
    responses(
        (status = 200, description = "The pipeline, `cancelled` once its jobs stopped", body = Envelope<PipelineData>),
        (status = 404, description = "No such pipeline in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The pipeline already ended", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel_pipeline(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(
        &req,
        pipelines::cancel(&state.services, &who, &id).await?,
    ))
}
