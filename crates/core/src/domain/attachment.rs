//! A message as a client may send it: plain text, or a list of blocks of
//! text, images and documents. The attachments reach the model as content
//! blocks of the user message; the text is what history, audit and the
//! deny patterns read.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most blocks one message may have (text and attachments together).
pub const MAX_BLOCKS: usize = 20;
/// Image types the model reads.
pub const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
/// Document types the model reads.
pub const DOCUMENT_TYPES: &[&str] = &["application/pdf"];

/// A chat's or job's `message`: a string, or a list of blocks.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MessageInput {
    /// The prompt; not empty, at most 1 MiB.
    Text(String),
    /// Text, images and documents (1 to 20 blocks).
    Blocks(#[serde(deserialize_with = "strict_blocks")] Vec<MessageBlock>),
}

impl MessageInput {
    /// The text (text blocks joined by a blank line) and the other blocks.
    pub fn split(self) -> (String, Vec<MessageBlock>) {
        match self {
            MessageInput::Text(text) => (text, Vec::new()),
            MessageInput::Blocks(blocks) => {
                let (texts, others): (Vec<_>, Vec<_>) = blocks
                    .into_iter()
                    .partition(|b| matches!(b, MessageBlock::Text { .. }));
                let text = texts
                    .into_iter()
                    .filter_map(|b| match b {
                        MessageBlock::Text { text } => Some(text),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n");
                (text, others)
            }
        }
    }
}

/// Blocks whose `type` (and their source's) is a string: serde would take
/// a number as the index of a variant.
fn strict_blocks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<MessageBlock>, D::Error> {
    use serde::de::Error;
    let values = Vec::<Value>::deserialize(d)?;
    if values.is_empty() || values.len() > MAX_BLOCKS {
        return Err(D::Error::custom(format!(
            "a message has 1 to {MAX_BLOCKS} blocks, not {}",
            values.len()
        )));
    }
    values
        .into_iter()
        .map(|value| {
            let tagged = |v: &Value| v.get("type").is_none_or(Value::is_string);
            if !tagged(&value) || value.get("source").is_some_and(|s| !tagged(s)) {
                return Err(D::Error::custom("a block's `type` must be a string"));
            }
            serde_json::from_value(value).map_err(D::Error::custom)
        })
        .collect()
}

/// One block of a message.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MessageBlock {
    Text {
        #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
        text: String,
    },
    /// PNG, JPEG, GIF or WebP.
    Image { source: BlockSource },
    /// A PDF.
    Document {
        source: BlockSource,
        /// Shown to the model with the document.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 500)]
        title: Option<String>,
    },
}

/// Where an attachment's bytes come from.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BlockSource {
    /// The bytes in the request. They must be of the type named: a PNG
    /// named `image/jpeg` is a 415.
    Base64 {
        #[schema(pattern = "^(image/png|image/jpeg|image/gif|image/webp|application/pdf)$")]
        media_type: String,
        /// Standard base64 (RFC 4648, padded).
        #[schema(pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
        data: String,
    },
    /// A file of the session's workspace, read when the request arrives;
    /// its type is told from its first bytes.
    File {
        /// Relative to the workspace.
        #[schema(min_length = 1, max_length = 4096)]
        path: String,
    },
}

/// What a block is once its bytes are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Document,
}

/// An attachment ready for the model: checked type, bytes as base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub media_type: String,
    /// Base64 of the bytes, as the Messages API takes them.
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Attachment {
    /// Checks `bytes` against the kind and the declared type (`None`: told
    /// from the bytes). `Err` says why the type is refused (a 415).
    pub fn new(
        kind: AttachmentKind,
        declared: Option<&str>,
        bytes: &[u8],
        title: Option<String>,
    ) -> Result<Attachment, String> {
        let found = sniff(bytes);
        let allowed = match kind {
            AttachmentKind::Image => IMAGE_TYPES,
            AttachmentKind::Document => DOCUMENT_TYPES,
        };
        let media_type = match (declared, found) {
            (Some(declared), Some(found)) if declared == found => found,
            (Some(declared), found) => {
                return Err(format!(
                    "the bytes are not {declared} ({})",
                    found.map_or("not a type the model reads".to_owned(), |f| format!(
                        "they are {f}"
                    ))
                ))
            }
            (None, Some(found)) => found,
            (None, None) => return Err(format!("the file is none of {}", allowed.join(", "))),
        };
        if !allowed.contains(&media_type) {
            return Err(format!(
                "{media_type} cannot be {}; use one of {}",
                match kind {
                    AttachmentKind::Image => "an image",
                    AttachmentKind::Document => "a document",
                },
                allowed.join(", ")
            ));
        }
        Ok(Attachment {
            kind,
            media_type: media_type.to_owned(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
            title,
        })
    }

    /// The content block of the user message the CLI passes to the model.
    pub fn content_block(&self) -> Value {
        let mut block = json!({
            "type": match self.kind {
                AttachmentKind::Image => "image",
                AttachmentKind::Document => "document",
            },
            "source": {"type": "base64", "media_type": self.media_type, "data": self.data},
        });
        if let Some(title) = &self.title {
            block["title"] = json!(title);
        }
        block
    }
}

/// The type of `bytes` from their first bytes, among those the model reads.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n0000";

    #[test]
    fn a_message_is_text_or_blocks() {
        let text: MessageInput = serde_json::from_value(json!("hello")).unwrap();
        assert!(matches!(text, MessageInput::Text(t) if t == "hello"));
        let blocks: MessageInput = serde_json::from_value(json!([
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}},
            {"type": "document", "source": {"type": "file", "path": "a.pdf"}, "title": "A"},
        ]))
        .unwrap();
        let MessageInput::Blocks(blocks) = blocks else {
            panic!("blocks")
        };
        assert_eq!(blocks.len(), 3);
        assert!(serde_json::from_value::<MessageInput>(
            json!([{"type": "image", "source": {"type": "url", "url": "http://x"}}])
        )
        .is_err());
    }

    #[test]
    fn the_bytes_must_be_the_type_named() {
        let ok = Attachment::new(AttachmentKind::Image, Some("image/png"), PNG, None).unwrap();
        assert_eq!(ok.content_block()["source"]["media_type"], "image/png");
        let told = Attachment::new(AttachmentKind::Image, None, PNG, None).unwrap();
        assert_eq!(told.media_type, "image/png");
        let e = Attachment::new(AttachmentKind::Image, Some("image/jpeg"), PNG, None).unwrap_err();
        assert!(e.contains("they are image/png"), "{e}");
        let e = Attachment::new(AttachmentKind::Document, None, PNG, None).unwrap_err();
        assert!(e.contains("cannot be a document"), "{e}");
        assert!(Attachment::new(AttachmentKind::Image, None, b"text", None).is_err());
    }
}
