//! A message's images and documents made ready for the model: decoded,
//! read from the workspace (beneath it, as the files API reads), their type
//! checked from their bytes, their size counted against
//! `MAX_ATTACHMENTS_MB`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use cap_std::fs::Dir;

use super::{Requester, Services};
use crate::db::models::session::Session;
use crate::domain::attachment::{
    Attachment, AttachmentKind, BlockSource, MessageBlock, MAX_BLOCKS,
};
use crate::error::ServiceError;
use crate::security::paths;

/// Standard padded base64, forgiving bits after the last byte (encoders
/// differ there; the bytes are the same).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The attachments of a message to `session`, checked and read. A `file`
/// source names a file of that session's workspace.
pub async fn resolve(
    services: &Services,
    who: &Requester,
    session: &Session,
    blocks: Vec<MessageBlock>,
) -> Result<Vec<Attachment>, ServiceError> {
    if blocks.is_empty() {
        return Ok(Vec::new());
    }
    if blocks.len() > MAX_BLOCKS {
        return Err(ServiceError::Validation(format!(
            "a message has at most {MAX_BLOCKS} blocks, not {}",
            blocks.len()
        )));
    }
    let limit = services.settings.files.max_attachment_bytes;
    let mut workspace: Option<Arc<Dir>> = None;
    let mut total = 0usize;
    let mut out = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        let (kind, source, title) = match block {
            MessageBlock::Image { source } => (AttachmentKind::Image, source, None),
            MessageBlock::Document { source, title } => (AttachmentKind::Document, source, title),
            MessageBlock::Text { .. } => continue,
        };
        let left = limit.saturating_sub(total);
        let (declared, bytes) = match source {
            BlockSource::Base64 { media_type, data } => {
                // Three bytes per four characters: refused before decoding.
                if data.len() / 4 * 3 > left + 2 {
                    return Err(too_large(limit));
                }
                let bytes = BASE64.decode(data.as_bytes()).map_err(|e| {
                    ServiceError::Validation(format!("message[{i}].source.data is not base64: {e}"))
                })?;
                (Some(media_type), bytes)
            }
            BlockSource::File { path } => {
                let root = match &workspace {
                    Some(root) => root.clone(),
                    None => {
                        let (_, root) = super::files::open(services, who, &session.name).await?;
                        workspace = Some(root.clone());
                        root
                    }
                };
                (None, read_file(root, &path, left).await?)
            }
        };
        total += bytes.len();
        if total > limit {
            return Err(too_large(limit));
        }
        let attachment = Attachment::new(kind, declared.as_deref(), &bytes, title)
            .map_err(|e| ServiceError::UnsupportedMediaType(format!("message[{i}]: {e}")))?;
        out.push(attachment);
    }
    Ok(out)
}

fn too_large(limit: usize) -> ServiceError {
    ServiceError::PayloadTooLarge(format!(
        "the message's attachments are larger than MAX_ATTACHMENTS_MB ({} MiB)",
        limit / (1024 * 1024)
    ))
}

/// At most `left + 1` bytes of the workspace file `raw` (one more than
/// allowed tells the caller it is too large). A path that does not name a
/// regular file beneath the workspace is not there.
async fn read_file(root: Arc<Dir>, raw: &str, left: usize) -> Result<Vec<u8>, ServiceError> {
    let shown = raw.to_owned();
    let missing =
        move || ServiceError::NotFound(format!("no file {shown:?} in the session's workspace"));
    let rel: PathBuf = paths::parse_relative(raw).map_err(|_| missing())?;
    let read = crate::blocking::run(move || {
        let file = crate::files::open_file(&root, &rel)?;
        let mut bytes = Vec::new();
        file.take(left as u64 + 1).read_to_end(&mut bytes)?;
        Ok::<_, crate::files::FilesError>(bytes)
    })
    .await?;
    match read {
        Ok(bytes) => Ok(bytes),
        Err(crate::files::FilesError::NotFound(_) | crate::files::FilesError::IsDirectory(_)) => {
            Err(missing())
        }
        Err(e) => Err(e.into()),
    }
}
