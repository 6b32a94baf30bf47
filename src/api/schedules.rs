//! Schedules: jobs started by the clock (cron, an interval, or once), with
//! their runs; pause, resume and trigger.

use crate::identity::Who;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery, Paged};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::domain::schedule::{CatchUp, Overlap, RunData, ScheduleData};
use claude_code_api_core::services::launch::JobPlan;
use claude_code_api_core::services::schedules::{self, NewSchedule};

/// A schedule: exactly one of `cron`, `every` and `at`, and the job of
/// each run.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// 1–100 of `[A-Za-z0-9._-]`, not starting with a dot; unique in the tenant.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")]
    name: String,
    /// Cron: 5 fields (`0 2 * * *`), or 6 with seconds first (`*/10 * * * * *`).
    #[serde(default)]
    cron: Option<String>,
    /// An interval: `90s`, `15m`, `1h30m`, `2d`.
    #[serde(default)]
    every: Option<String>,
    /// One run at this RFC 3339 instant.
    #[serde(default)]
    at: Option<String>,
    /// The IANA time zone of `cron` (default `UTC`); daylight-saving
    /// changes follow it.
    #[serde(default)]
    timezone: Option<String>,
    /// What each run does: a job in `session`, or in a `new_session` made
    /// for the run.
    job: JobPlan,
    /// A run due while the last one is unfinished: `skip` (default),
    /// `queue`, `replace` or `allow`.
    #[serde(default)]
    overlap: Option<Overlap>,
    /// Due times missed while no server ran: `one` (default: the latest
    /// runs once), `none` or `all`.
    #[serde(default)]
    catch_up: Option<CatchUp>,
    /// A run that cannot start within this many seconds of its due time is
    /// skipped.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    start_deadline_seconds: Option<i64>,
    /// Created paused (default false).
    #[serde(default)]
    paused: Option<bool>,
}

/// `POST /schedules/{id}/pause`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseSchedule {
    /// Why, for whoever looks later (at most 1000 characters).
    #[serde(default)]
    note: Option<String>,
}

/// Creates a schedule; its first run is at `next_run_at`.
#[utoipa::path(
    post,
    path = "/api/v1/schedules",
    tag = "schedules",
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Envelope<ScheduleData>),
        (status = 404, description = "The job's session, or its template, does not exist in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A schedule of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name, timing, time zone, job or webhook URL", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The tenant has as many schedules as it may (SCHEDULES_PER_TENANT)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    body: super::envelope::JsonObject<CreateSchedule>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let row = schedules::create(
        &state.services,
        &who,
        NewSchedule {
            name: body.name,
            cron: body.cron,
            every: body.every,
            at: body.at,
            timezone: body.timezone,
            job: body.job,
            overlap: body.overlap,
            catch_up: body.catch_up,
            start_deadline_seconds: body.start_deadline_seconds,
            paused: body.paused,
        },
    )
    .await?;
    let location = format!("/api/v1/schedules/{}", row.id);
    let view = schedules::view(&state.services, row).await?;
    Ok(envelope::created(&req, &location, view))
}

/// The tenant's schedules, by name.
#[utoipa::path(
    get,
    path = "/api/v1/schedules",
    tag = "schedules",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of schedules", body = Paged<ScheduleData>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_schedules(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (items, total) = schedules::list(&state.services, &who, page.offset(), page.limit).await?;
    Ok(envelope::page(&req, items, &page, total))
}

/// One schedule: its next run, last run and counts.
#[utoipa::path(
    get,
    path = "/api/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id or name")),
    responses(
        (status = 200, description = "The schedule", body = Envelope<ScheduleData>),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = schedules::load(&state.services, &who, &id).await?;
    Ok(envelope::ok(
        &req,
        schedules::view(&state.services, row).await?,
    ))
}

/// Deletes a schedule and its record of runs; jobs it started stay.
#[utoipa::path(
    delete,
    path = "/api/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_schedule(
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    schedules::delete(&state.services, &who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Pauses a schedule: nothing runs until it is resumed, and due times in
/// between are not caught up.
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/pause",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id or name")),
    request_body(content = Option<PauseSchedule>),
    responses(
        (status = 200, description = "The schedule, paused", body = Envelope<ScheduleData>),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A note over 1000 characters", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn pause_schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    body: Option<web::Json<PauseSchedule>>,
) -> Result<HttpResponse, ApiError> {
    let note = body.and_then(|b| b.into_inner().note);
    let row = schedules::pause(&state.services, &who, &id, note).await?;
    Ok(envelope::ok(
        &req,
        schedules::view(&state.services, row).await?,
    ))
}

/// Resumes a schedule from now.
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/resume",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id or name")),
    responses(
        (status = 200, description = "The schedule, with its next run", body = Envelope<ScheduleData>),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn resume_schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = schedules::resume(&state.services, &who, &id).await?;
    Ok(envelope::ok(
        &req,
        schedules::view(&state.services, row).await?,
    ))
}

/// Runs the schedule's job now (also while paused); the overlap policy
/// applies, so the run may be `skipped` or `waiting`.
#[utoipa::path(
    post,
    path = "/api/v1/schedules/{id}/trigger",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id or name")),
    responses(
        (status = 202, description = "The run, with its job when one was started", body = Envelope<RunData>),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn trigger_schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = schedules::trigger(&state.services, &who, &id).await?;
    Ok(envelope::data(&req, StatusCode::ACCEPTED, run))
}

/// The schedule's runs, newest first: started, skipped (and why), waiting
/// or failed to start.
#[utoipa::path(
    get,
    path = "/api/v1/schedules/{id}/runs",
    tag = "schedules",
    params(("id" = String, Path, description = "The schedule's id or name"), PageQuery),
    responses(
        (status = 200, description = "A page of runs", body = Paged<RunData>),
        (status = 404, description = "No such schedule in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_schedule_runs(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.validate()?;
    let (items, total) =
        schedules::runs(&state.services, &who, &id, page.offset(), page.limit).await?;
    Ok(envelope::page(&req, items, &page, total))
}
