//! Files of a session's workspace: upload (multipart, streamed to disk with
//! the size limit enforced while reading), list, download (Range, ETag),
//! delete, and a streamed `.tar.gz` of a folder. Paths are confined to the
//! workspace by `security::paths` and `files`; a path that would leave it is
//! a 400 (lexically) or a 404 (through a symlink), never content.

use super::flags::parse_bool;
use crate::identity::Who;
use claude_code_api_core::error::ServiceError;
use std::path::PathBuf;
use std::sync::Arc;

use actix_files::NamedFile;
use actix_multipart::Multipart;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use cap_std::fs::Dir;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use utoipa::ToSchema;

use super::envelope::{self, Envelope, PageQuery};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::disk::DiskStatus;
use claude_code_api_core::files::{self, archive, FilesError, TempUpload};
use claude_code_api_core::security::paths;
use claude_code_api_core::services::files::{self as files_service, blocking};

/// Largest `path` form field accepted.
const MAX_FIELD_BYTES: usize = 4096;
/// Multipart framing allowed on top of the file when checking Content-Length.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// `attachment; filename="…"` (RFC 6266). A name with anything but
/// printable ASCII (non-ASCII letters, or control characters, which the
/// agent may put in a name and no header may carry) goes in `filename*`,
/// percent-encoded, beside a `filename` fallback with `_` in their place.
fn attachment(name: &str) -> ContentDisposition {
    let printable = |c: char| c.is_ascii() && !c.is_ascii_control();
    let mut parameters = Vec::new();
    if name.chars().all(printable) {
        parameters.push(DispositionParam::Filename(name.to_owned()));
    } else {
        let fallback: String = name
            .chars()
            .map(|c| if printable(c) { c } else { '_' })
            .collect();
        parameters.push(DispositionParam::Filename(fallback));
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: name.as_bytes().to_vec(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    path: Option<String>,
    overwrite: Option<String>,
}

/// A stored upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    /// Relative to the workspace.
    path: String,
    /// Bytes.
    size: u64,
    name: String,
}

/// The upload form, as the OpenAPI document describes it; the handler reads
/// the parts as a stream instead of into this. Any other part is refused.
/// (A `path` part is also read, as the Python original took it; the
/// document names only `?path=`, since OpenAPI cannot say that the two must
/// agree when both are given.)
#[expect(dead_code, reason = "only its schema is used, by the OpenAPI document")]
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadForm {
    /// The file; its part's filename is the stored name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A finished upload waiting to be moved into place.
struct Received {
    upload: TempUpload,
    name: String,
}

fn malformed(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::from(ServiceError::BadRequest(format!(
        "malformed multipart body: {e}"
    )))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::from(ServiceError::PayloadTooLarge(format!(
        "the file exceeds the upload limit of {} MiB (MAX_UPLOAD_MB)",
        limit / (1024 * 1024)
    )))
}

/// An upload that would take the tenant past its disk quota: refused whole.
fn does_not_fit(disk: &DiskStatus) -> ApiError {
    ApiError(ServiceError::DiskQuotaExceeded {
        message: format!(
            "the file does not fit in the tenant's disk quota ({} MiB free of {} MiB); delete files first",
            disk.limit_bytes.saturating_sub(disk.used_bytes) / (1024 * 1024),
            disk.limit_bytes / (1024 * 1024)
        ),
        used_bytes: disk.used_bytes,
        limit_bytes: disk.limit_bytes,
    })
}

/// The small `path` form field.
async fn read_path_field(field: &mut actix_multipart::Field) -> Result<PathBuf, ApiError> {
    let mut raw = Vec::new();
    while let Some(chunk) = field.next().await {
        raw.extend_from_slice(&chunk.map_err(malformed)?);
        if raw.len() > MAX_FIELD_BYTES {
            return Err(ApiError::from(ServiceError::Validation(
                "the path field is too long".into(),
            )));
        }
    }
    let raw = String::from_utf8(raw).map_err(|_| {
        ApiError::from(ServiceError::Validation(
            "the path field must be UTF-8".into(),
        ))
    })?;
    Ok(paths::parse_relative(&raw).map_err(FilesError::from)?)
}

/// Streams the `file` part into a temporary file: in the target folder when
/// it is known and exists already, else in the workspace root (moved on
/// commit either way). Past `limit` bytes it stops reading with a 413; any
/// early return drops the `TempUpload`, which removes the file.
async fn receive_file(
    field: &mut actix_multipart::Field,
    root: &Arc<Dir>,
    folder: Option<&PathBuf>,
    limit: u64,
    disk: &DiskStatus,
) -> Result<Received, ApiError> {
    let name = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::from(ServiceError::Validation(
                "the file part needs a filename".into(),
            ))
        })?;
    paths::validate_file_name(&name).map_err(FilesError::from)?;
    let root = root.clone();
    let folder = folder.cloned().unwrap_or_default();
    let (upload, file) = blocking(move || {
        let temp_folder = match files::existing_folder(&root, &folder)? {
            Some(dir) => dir,
            None => root.try_clone()?,
        };
        TempUpload::create(temp_folder)
    })
    .await?;
    let mut file = tokio::fs::File::from_std(file);
    let mut size: u64 = 0;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::from(ServiceError::BadRequest(format!(
                "the upload was interrupted: {e}"
            )))
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        if disk.used_bytes.saturating_add(size) > disk.limit_bytes {
            return Err(does_not_fit(disk));
        }
        file.write_all(&chunk)
            .await
            .map_err(ServiceError::internal)?;
    }
    file.flush().await.map_err(ServiceError::internal)?;
    file.sync_all().await.map_err(ServiceError::internal)?;
    Ok(Received { upload, name })
}

/// Uploads one file into the workspace (`multipart/form-data`), streamed to
/// disk and moved into place whole; nothing is left behind on failure.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{name}/files",
    tag = "files",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("path" = Option<String>, Query, description = "The folder to put it in, created if missing (default: the workspace)"),
        ("overwrite" = Option<bool>, Query, description = "Replace an existing file (default false)"),
    ),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = Envelope<Uploaded>),
        (status = 400, description = "A malformed form or path", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No session of that name in this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The file exists (without `overwrite`), or a file is in the way of the folder", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `MAX_UPLOAD_MB`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A missing `file` part, an unknown field or a bad name", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The tenant's disk quota is reached, or the file would pass it", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn upload_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<UploadQuery>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let limit = state.services.settings.files.max_upload_bytes;
    let session_name = name.clone();
    let overwrite = parse_bool("overwrite", query.overwrite.as_deref())?;
    let mut folder: Option<PathBuf> = match &query.path {
        Some(raw) => Some(paths::parse_relative(raw).map_err(FilesError::from)?),
        None => None,
    };
    let (_, root) = files_service::open(&state.services, &who, &name).await?;
    // A declared length far beyond the limit is refused before reading.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(too_large(limit));
    }
    // Uploads count against the tenant's disk quota like the agent's files.
    let disk = state
        .services
        .disk
        .status_for_write(who.tenant().as_str())
        .await?;
    disk.check()?;
    let room = disk.limit_bytes.saturating_sub(disk.used_bytes);
    if declared.is_some_and(|len| len > room.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(does_not_fit(&disk));
    }
    let mut received: Option<Received> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(malformed)?;
        match field.name().unwrap_or_default() {
            "path" => {
                let parsed = read_path_field(&mut field).await?;
                if folder.as_ref().is_some_and(|f| *f != parsed) {
                    return Err(ApiError::from(ServiceError::Validation(
                        "path was given both as a query parameter and as a form field, differently"
                            .into(),
                    )));
                }
                folder = Some(parsed);
            }
            "file" if received.is_some() => {
                return Err(ApiError::from(ServiceError::Validation(
                    "send one file part per request".into(),
                )))
            }
            "file" => {
                received =
                    Some(receive_file(&mut field, &root, folder.as_ref(), limit, &disk).await?);
            }
            other => {
                return Err(ApiError::from(ServiceError::Validation(format!(
                    "unexpected form field {other:?}: send `file` and optionally `path`"
                ))))
            }
        }
    }
    let Some(Received { upload, name }) = received else {
        return Err(ApiError::from(ServiceError::Validation(
            "a `file` part is required".into(),
        )));
    };
    let folder = folder.unwrap_or_default();
    let path = files::joined(&folder, &name);
    let (shown, stored_name) = (path.clone(), name.clone());
    // The folder is created only now, so a refused upload leaves no trace.
    let agent = state
        .services
        .sandbox
        .owner(who.tenant().as_str())
        .await
        .map_err(ServiceError::internal)?;
    let size = blocking(move || {
        let target = files::open_folder(&root, &folder, agent)?;
        upload.commit(&target, &stored_name, overwrite, &shown, agent)
    })
    .await?;
    state
        .services
        .disk
        .forget_usage(who.tenant().as_str())
        .await;
    claude_code_api_core::services::audit::record(
        &state.services,
        &who,
        "file.upload",
        &format!("{session_name}/{path}"),
    )
    .await;
    Ok(envelope::data(
        &req,
        StatusCode::CREATED,
        Uploaded { path, size, name },
    ))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    path: Option<String>,
    recursive: Option<String>,
    hidden: Option<String>,
    page: Option<String>,
    limit: Option<String>,
}

/// A page of a folder's entries, with the folder's own `path`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FilesPage {
    data: Vec<files::Entry>,
    meta: envelope::Meta,
    pagination: envelope::Pagination,
    /// The listed folder, relative to the workspace (`.` at its root).
    path: String,
}

/// A folder of the workspace, listed (hidden files and recursion on request).
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/files",
    tag = "files",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("path" = Option<String>, Query, description = "The folder, relative to the workspace (default: its root)"),
        ("recursive" = Option<bool>, Query, description = "Include every folder below"),
        ("hidden" = Option<bool>, Query, description = "Include names starting with a dot"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of entries", body = FilesPage),
        (status = 400, description = "A path outside the workspace", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or folder", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The path is a file, not a folder", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too many entries, or bad paging", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_files(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery {
        page: query.page.clone(),
        limit: query.limit.clone(),
    }
    .validate()?;
    let recursive = parse_bool("recursive", query.recursive.as_deref())?;
    let hidden = parse_bool("hidden", query.hidden.as_deref())?;
    let rel =
        paths::parse_relative(query.path.as_deref().unwrap_or("")).map_err(FilesError::from)?;
    let listed = match rel.to_string_lossy() {
        shown if shown.is_empty() => ".".to_owned(),
        shown => shown.into_owned(),
    };
    let entries = files_service::list(&state.services, &who, &name, rel, recursive, hidden).await?;
    let total = entries.len() as i64;
    let data: Vec<files::Entry> = entries
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .collect();
    Ok(HttpResponse::Ok().json(FilesPage {
        data,
        meta: envelope::meta(&req),
        pagination: envelope::pagination(&page, total),
        path: listed,
    }))
}

/// Downloads one file (`Range` requests supported).
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/files/{path}",
    tag = "files",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("path" = String, Path, description = "The file, relative to the workspace"),
        ("Range" = Option<String>, Header, pattern = "^bytes=[0-9]*-[0-9]*(, *[0-9]*-[0-9]*)*$", description = "Byte ranges (`bytes=0-99`); a range the file does not cover is a 416"),
    ),
    responses(
        (status = 200, description = "The file, with a `Content-Type` guessed from its name", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range of the file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range is outside the file"),
        (status = 400, description = "A path outside the workspace", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or file", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A folder, not a file (download it with `/archive?path=`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn download_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, raw) = path.into_inner();
    let rel = paths::parse_relative(&raw).map_err(FilesError::from)?;
    let (_, root) = files_service::open(&state.services, &who, &name).await?;
    let opened = rel.clone();
    let file = blocking(move || files::open_file(&root, &opened)).await?;
    let file_name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = NamedFile::from_file(file, &rel)
        .map_err(ServiceError::internal)?
        .set_content_disposition(attachment(&file_name))
        .prefer_utf8(true);
    claude_code_api_core::services::audit::record(
        &state.services,
        &who,
        "file.download",
        &format!("{name}/{raw}"),
    )
    .await;
    Ok(named.into_response(&req))
}

/// Deletes a file, or a folder with everything in it.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{name}/files/{path}",
    tag = "files",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("path" = String, Path, description = "The file or folder, relative to the workspace"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A path outside the workspace", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session, file or folder", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The workspace root itself", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_file(
    state: web::Data<AppState>,
    who: Who,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, raw) = path.into_inner();
    files_service::delete(&state.services, &who, &name, &raw).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
pub struct ArchiveQuery {
    path: Option<String>,
}

/// The workspace, or one folder of it, as a streamed `.tar.gz`.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{name}/archive",
    tag = "files",
    params(
        ("name" = String, Path, description = "The session's name"),
        ("path" = Option<String>, Query, description = "Only this folder (default: the whole workspace)"),
    ),
    responses(
        (status = 200, description = "The archive", content_type = "application/gzip", body = Vec<u8>),
        (status = 400, description = "A path outside the workspace", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or folder", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The path is a file, not a folder", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn download_archive(
    state: web::Data<AppState>,
    who: Who,
    name: web::Path<String>,
    query: web::Query<ArchiveQuery>,
) -> Result<HttpResponse, ApiError> {
    let rel =
        paths::parse_relative(query.path.as_deref().unwrap_or("")).map_err(FilesError::from)?;
    let (session, root) = files_service::open(&state.services, &who, &name).await?;
    let checked = rel.clone();
    let check_root = root.clone();
    blocking(move || files::check_folder(&check_root, &checked)).await?;
    let prefix = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| session.name.clone());
    let (tx, mut rx) = mpsc::channel(8);
    let archive_prefix = prefix.clone();
    let failed = archive::Failed::default();
    let writer =
        archive::ChannelWriter::new(tx.clone(), state.services.settings.files.archive_stall);
    let failure = failed.clone();
    let session_name = session.name.clone();
    claude_code_api_core::blocking::spawn(move || {
        // Held until the outcome is set: the body ends only after that.
        let _open = tx;
        let written =
            archive::write_tar_gz(&root, &rel, &archive_prefix, writer).and_then(|mut writer| {
                use std::io::Write;
                writer.flush()
            });
        if let Err(e) = written {
            // Logged with its cause, whoever cut it.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                tracing::info!(session = %session_name, error = %e, "archive download cut: the client went away");
            } else {
                tracing::warn!(session = %session_name, error = %e, "archive download cut");
            }
            failure.set();
        }
    });
    // The first chunk (or the end) before the answer: an archive that fails
    // before its first byte is a problem document, not a cut connection.
    let first = rx.recv().await;
    if first.is_none() && failed.is_set() {
        return Err(ApiError::from(ServiceError::internal(
            "the archive could not be written",
        )));
    }
    // The body ends with an error when the archive failed: the client sees
    // a truncated download, never a silently incomplete archive.
    let body = futures_util::stream::iter(first)
        .chain(ReceiverStream::new(rx))
        .chain(futures_util::stream::iter(
            std::iter::from_fn(move || {
                failed
                    .is_set()
                    .then(|| Err(std::io::Error::other("the archive could not be completed")))
            })
            .take(1),
        ));
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header(attachment(&format!("{prefix}.tar.gz")))
        .streaming(body))
}
