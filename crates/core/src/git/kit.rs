//! What the services need for git: the key that seals credentials, the
//! mirrors, and an HTTP client for the providers' APIs.

use std::path::Path;
use std::sync::Arc;

use super::mirror::Mirrors;
use crate::config::git::GitSettings;
use crate::security::secret_box::SecretBox;

#[derive(Debug)]
pub struct GitKit {
    pub secrets: SecretBox,
    pub mirrors: Mirrors,
    /// No proxy from the environment, no redirects (a provider that
    /// redirects a POST would get the token elsewhere).
    pub http: reqwest::Client,
}

impl GitKit {
    pub fn new(settings: &GitSettings, data_dir: &Path) -> std::io::Result<Arc<GitKit>> {
        Ok(Arc::new(GitKit {
            secrets: SecretBox::load(settings.secrets_key, data_dir)?,
            mirrors: Mirrors::new(data_dir, settings.timeout),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(settings.timeout)
                .build()
                .map_err(std::io::Error::other)?,
        }))
    }
}
