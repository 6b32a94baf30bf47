//! Who made a session or queued a job, as documents show it.

use serde::Serialize;
use utoipa::ToSchema;

/// The maker of a session or job.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Creator {
    /// The key's id, or `person:<sub>` for a person signed in through the
    /// identity provider.
    pub id: String,
    /// The key's label (a personal key's names its person), or the
    /// person's email.
    pub label: String,
}

impl Creator {
    /// The maker of a stored row, when it was recorded.
    pub fn of(id: &Option<String>, label: &Option<String>) -> Option<Creator> {
        Some(Creator {
            id: id.clone()?,
            label: label.clone().unwrap_or_default(),
        })
    }
}
