//! `settings.storage`: where the server keeps its state and the workspaces.

use std::path::PathBuf;

use super::parse::Env;
use super::{redact_url, ConfigError};

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `DATA_DIR`: server state: SQLite file, CLI config dirs, pid files.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: postgres://… for PostgreSQL; unset → SQLite in `DATA_DIR`.
    pub database_url: Option<String>,
    /// `APPROVED_DIRECTORY`: root of all workspaces.
    pub approved_directory: PathBuf,
}

impl StorageSettings {
    pub(super) fn read(env: &Env) -> Result<StorageSettings, ConfigError> {
        let database_url = env.get("DATABASE_URL");
        if let Some(url) = &database_url {
            let known = ["postgres://", "postgresql://", "sqlite://"];
            if url.contains("://") && !known.iter().any(|s| url.starts_with(s)) {
                return Err(ConfigError {
                    name: "DATABASE_URL".into(),
                    value: redact_url(url),
                    reason: "expected postgres://…, postgresql://…, sqlite://… or a file path"
                        .into(),
                });
            }
        }
        Ok(StorageSettings {
            data_dir: PathBuf::from(env.string("DATA_DIR")),
            database_url,
            approved_directory: PathBuf::from(env.string("APPROVED_DIRECTORY")),
        })
    }

    /// The database URL in force: `DATABASE_URL`, else the SQLite file.
    pub fn effective_database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            self.data_dir
                .join("claude-code-api.db")
                .to_string_lossy()
                .into_owned()
        })
    }

    /// `effective_database_url` with any password hidden, for logs and `/health`.
    pub fn effective_database_url_redacted(&self) -> String {
        redact_url(&self.effective_database_url())
    }
}
