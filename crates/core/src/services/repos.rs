//! A tenant's repositories: register, list, change, delete. The credential
//! is write-only: sealed on the way in, opened only by the server's own git
//! and provider calls, never answered, logged or given to an agent.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{audit, Requester, Services};
use crate::db::models::repo::{self, Repo};
use crate::db::{self};
use crate::error::ServiceError;
use crate::git::mirror::{Access, Credential};
use crate::git::provider::Provider;
use crate::git::remote::{self, Transport};

/// Longest credential accepted (an SSH key fits comfortably).
const MAX_CREDENTIAL: usize = 16 * 1024;

/// `POST /repos`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRepo {
    /// Letters, digits, `-`, `_`, `.`; unique in the tenant.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")]
    pub name: String,
    /// `https://…`, `ssh://…`, `user@host:path`, or a local path beneath
    /// the operator's `GIT_ALLOWED_PATHS`.
    pub url: String,
    /// Asked of the remote when not given.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// A token (`user:token` for another user name), or an SSH private key;
    /// or `{"secret": NAME}`, one of the tenant's secrets. Write-only.
    #[serde(default)]
    pub credential: Option<CredentialInput>,
    /// `github`, `gitlab` or `gitea`: how pull requests are opened.
    #[serde(default)]
    pub provider: Option<String>,
    /// The provider's API (needed for Gitea and self-hosted forges).
    #[serde(default)]
    pub api_url: Option<String>,
    /// The author of the server's commits (default: the tenant).
    #[serde(default)]
    pub author: Option<Author>,
}

/// `PATCH /repos/{name}`: what is given changes; `credential: null` removes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoChange {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CredentialInput>)]
    pub credential: Option<Option<CredentialInput>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub provider: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub api_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Author>)]
    pub author: Option<Option<Author>>,
}

/// A field that is there (`null` included) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A credential: the value itself, or a tenant secret by name.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CredentialInput {
    Secret(super::secrets::SecretRef),
    Value(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// A repository as the API shows it: never its credential.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RepoView {
    pub id: String,
    pub name: String,
    pub url: String,
    pub provider: Option<String>,
    pub api_url: Option<String>,
    pub default_branch: String,
    /// Whether a credential is stored (its value is never shown).
    pub has_credential: bool,
    /// The tenant secret that is the credential, when it is one.
    pub credential_secret: Option<String>,
    /// `token` or `ssh_key`.
    pub credential_kind: Option<String>,
    pub author: Option<Author>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

impl From<Repo> for RepoView {
    fn from(r: Repo) -> RepoView {
        RepoView {
            author: match (r.author_name, r.author_email) {
                (Some(name), Some(email)) => Some(Author { name, email }),
                _ => None,
            },
            has_credential: r.credential.is_some() || r.credential_secret.is_some(),
            credential_secret: r.credential_secret,
            id: r.id,
            name: r.name,
            url: r.url,
            provider: r.provider,
            api_url: r.api_url,
            default_branch: r.default_branch,
            credential_kind: r.credential_kind,
            created_at: crate::domain::timestamp(&r.created_at),
            updated_at: crate::domain::timestamp(&r.updated_at),
        }
    }
}

pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Validation(
            "name must be 1-100 letters, digits, '-', '_' or '.', not starting with '.'".into(),
        ))
    }
}

fn validate_author(author: &Author) -> Result<(), ServiceError> {
    let fine =
        |s: &str| !s.trim().is_empty() && s.len() <= 200 && !s.contains(['<', '>', '\n', '\0']);
    if fine(&author.name) && fine(&author.email) && author.email.contains('@') {
        Ok(())
    } else {
        Err(ServiceError::Validation(
            "author needs a name and an email (no '<', '>' or line breaks)".into(),
        ))
    }
}

fn validate_credential(text: &str) -> Result<(), ServiceError> {
    if text.trim().is_empty() || text.len() > MAX_CREDENTIAL || text.contains('\0') {
        return Err(ServiceError::Validation(format!(
            "credential must be 1 to {MAX_CREDENTIAL} bytes"
        )));
    }
    if !text.trim_start().starts_with("-----BEGIN") && text.chars().any(char::is_whitespace) {
        return Err(ServiceError::Validation(
            "credential: a token has no spaces or line breaks (an SSH key starts with -----BEGIN)"
                .into(),
        ));
    }
    Ok(())
}

/// The repository's checks, all of them, before anything is stored.
async fn check(
    services: &Services,
    row: &Repo,
    credential: Option<&str>,
) -> Result<(), ServiceError> {
    let settings = &services.settings.git;
    let checked = remote::parse(&row.url, settings).map_err(ServiceError::Validation)?;
    remote::check_host(&checked, settings)
        .await
        .map_err(ServiceError::Validation)?;
    if let Some(provider) = &row.provider {
        let provider: Provider = provider.parse().map_err(ServiceError::Validation)?;
        if row.api_url.is_none() && provider.default_api_url().is_none() {
            return Err(ServiceError::Validation(format!(
                "provider {} needs api_url (the forge's API, e.g. https://git.example.com/api/v1)",
                provider.as_str()
            )));
        }
    }
    if let Some(api_url) = &row.api_url {
        remote::check_api_url(api_url, settings)
            .await
            .map_err(ServiceError::Validation)?;
    }
    if !crate::git::valid_branch(&row.default_branch) {
        return Err(ServiceError::Validation(
            "default_branch is not a branch name".into(),
        ));
    }
    if let Some(c) = credential {
        validate_credential(c)?;
        let is_key = c.trim_start().starts_with("-----BEGIN");
        match (checked.transport, is_key) {
            (Transport::Ssh, false) => {
                return Err(ServiceError::Validation(
                    "an ssh remote takes an SSH private key as credential".into(),
                ))
            }
            (Transport::Https | Transport::Http, true) => {
                return Err(ServiceError::Validation(
                    "an https remote takes a token as credential".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// How the server reaches `row` (its credential opened, or its secret read).
pub async fn access(services: &Services, row: &Repo) -> Result<Access, ServiceError> {
    let checked =
        remote::parse(&row.url, &services.settings.git).map_err(ServiceError::Validation)?;
    let credential = match (&row.credential, &row.credential_secret) {
        (_, Some(name)) => {
            let tenant = crate::db::models::TenantId(row.tenant_id.clone());
            let text = super::secrets::resolve(services, &tenant, name).await?;
            Some(Credential::from_text(&text, row.provider.as_deref()))
        }
        (Some(sealed), None) => {
            let plain = services
                .git
                .secrets
                .open(sealed, &Repo::credential_context(&row.tenant_id, &row.id))
                .map_err(|e| {
                    ServiceError::Unavailable(format!(
                        "the repository's credential cannot be read: {e}"
                    ))
                })?;
            let text = String::from_utf8(plain).map_err(ServiceError::internal)?;
            Some(Credential::from_text(&text, row.provider.as_deref()))
        }
        (None, None) => None,
    };
    Ok(Access {
        tenant_id: row.tenant_id.clone(),
        repo_id: row.id.clone(),
        url: checked.url,
        transport: checked.transport,
        credential,
    })
}

/// Registers a repository: checked, reached once (`ls-remote`: the
/// credential works, the default branch is known), then stored. Audited.
pub async fn create(
    services: &Services,
    who: &Requester,
    new: NewRepo,
) -> Result<RepoView, ServiceError> {
    validate_name(&new.name)?;
    if let Some(author) = &new.author {
        validate_author(author)?;
    }
    let now = db::now();
    let id = uuid::Uuid::new_v4().to_string();
    let mut row = Repo {
        id: id.clone(),
        tenant_id: who.tenant().0.clone(),
        name: new.name.clone(),
        url: new.url.trim().to_owned(),
        provider: new.provider.map(|p| p.to_ascii_lowercase()),
        api_url: new.api_url,
        default_branch: new.default_branch.clone().unwrap_or_else(|| "main".into()),
        credential: None,
        credential_kind: None,
        credential_secret: None,
        author_name: new.author.as_ref().map(|a| a.name.clone()),
        author_email: new.author.as_ref().map(|a| a.email.clone()),
        created_at: now,
        updated_at: now,
    };
    if row.api_url.is_none() {
        row.api_url = row
            .provider
            .as_deref()
            .and_then(|p| p.parse::<Provider>().ok())
            .and_then(Provider::default_api_url)
            .map(str::to_owned);
    }
    let credential_text = credential_text(services, who, new.credential.as_ref()).await?;
    check(services, &row, credential_text.as_deref()).await?;
    let (tenant, lookup) = (who.tenant().clone(), new.name.clone());
    let (taken, count) = db::run(&services.pool, move |c| {
        Ok((
            repo::find_by_name(c, &tenant, &lookup)?.is_some(),
            repo::count(c, &tenant)?,
        ))
    })
    .await?;
    if taken {
        return Err(ServiceError::Conflict(format!(
            "a repository named {:?} exists",
            new.name
        )));
    }
    let max = services.settings.git.max_repos;
    if count >= max {
        return Err(ServiceError::Conflict(format!(
            "this tenant has {count} repositories, its limit (GIT_MAX_REPOS); delete one first"
        )));
    }
    set_credential(
        services,
        &mut row,
        new.credential.as_ref(),
        credential_text.as_deref(),
    )?;
    let access = access(services, &row).await?;
    let remote_default = services.git.mirrors.default_branch(&access).await;
    match (&new.default_branch, remote_default) {
        (None, Ok(branch)) => row.default_branch = branch,
        (Some(_), Ok(_)) => {}
        // Reaching the remote is part of registering it.
        (_, Err(e)) => return Err(e.into()),
    }
    let insert = row.clone();
    db::run(&services.pool, move |c| repo::insert(c, &insert))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ServiceError::Conflict(format!("a repository named {:?} exists", row.name))
            } else {
                e.into()
            }
        })?;
    audit::record(services, who, "repo.create", &row.name).await;
    // The first session need not wait for the clone.
    let (kit, warm) = (services.git.clone(), access);
    actix_rt::spawn(async move {
        if let Err(e) = kit.mirrors.fresh(&warm, Instant::now()).await {
            tracing::warn!(repo = %warm.repo_id, error = %e, "cannot clone the repository's mirror yet");
        }
    });
    Ok(row.into())
}

pub async fn list(services: &Services, who: &Requester) -> Result<Vec<RepoView>, ServiceError> {
    let tenant = who.tenant().clone();
    let rows = db::run(&services.pool, move |c| repo::list(c, &tenant)).await?;
    Ok(rows.into_iter().map(RepoView::from).collect())
}

/// The tenant's repository `name` (another tenant's is not found).
pub async fn load(services: &Services, who: &Requester, name: &str) -> Result<Repo, ServiceError> {
    let (tenant, lookup) = (who.tenant().clone(), name.to_owned());
    db::run(&services.pool, move |c| {
        repo::find_by_name(c, &tenant, &lookup)
    })
    .await?
    .ok_or_else(|| ServiceError::NotFound(format!("no repository named {name:?}")))
}

pub async fn update(
    services: &Services,
    who: &Requester,
    name: &str,
    change: RepoChange,
) -> Result<RepoView, ServiceError> {
    let mut row = load(services, who, name).await?;
    let reach_again = change.url.is_some() || change.credential.is_some();
    if let Some(url) = change.url {
        row.url = url.trim().to_owned();
    }
    if let Some(branch) = change.default_branch {
        row.default_branch = branch;
    }
    if let Some(provider) = change.provider {
        row.provider = provider.map(|p| p.to_ascii_lowercase());
    }
    if let Some(api_url) = change.api_url {
        row.api_url = api_url;
    }
    if let Some(author) = change.author {
        if let Some(a) = &author {
            validate_author(a)?;
        }
        row.author_name = author.as_ref().map(|a| a.name.clone());
        row.author_email = author.map(|a| a.email);
    }
    let new_credential = change.credential.clone().flatten();
    let credential_text = match &change.credential {
        Some(input) => credential_text(services, who, input.as_ref()).await?,
        // Unchanged: the stored one is checked against a changed URL.
        None => access(services, &row)
            .await?
            .credential
            .map(|c| c.secret().to_owned()),
    };
    check(services, &row, credential_text.as_deref()).await?;
    if change.credential.is_some() {
        set_credential(
            services,
            &mut row,
            new_credential.as_ref(),
            credential_text.as_deref(),
        )?;
    }
    if reach_again {
        let access = access(services, &row).await?;
        services.git.mirrors.default_branch(&access).await?;
    }
    row.updated_at = db::now();
    let stored = row.clone();
    db::run(&services.pool, move |c| repo::update(c, &stored)).await?;
    audit::record(services, who, "repo.update", &row.name).await;
    Ok(row.into())
}

/// Deletes the repository and, unless sessions still use it, its mirror.
/// Sessions made from it keep working (their worktrees borrow the mirror's
/// objects; it is removed with the last of them) but can no longer push.
pub async fn delete(services: &Services, who: &Requester, name: &str) -> Result<(), ServiceError> {
    let row = load(services, who, name).await?;
    let (tenant, id) = (who.tenant().clone(), row.id.clone());
    let in_use = db::run(&services.pool, move |c| {
        repo::delete(c, &tenant, &id)?;
        crate::db::models::session_repo::count_for_repo(c, &id)
    })
    .await?;
    // Worktrees borrow the mirror's objects: it goes with the last of them.
    if in_use == 0 {
        services.git.mirrors.remove(&row.tenant_id, &row.id).await;
    }
    audit::record(services, who, "repo.delete", &row.name).await;
    Ok(())
}

/// The credential's text as given, or its secret's value (a reference to a
/// secret the tenant does not have is a 422).
async fn credential_text(
    services: &Services,
    who: &Requester,
    input: Option<&CredentialInput>,
) -> Result<Option<String>, ServiceError> {
    match input {
        None => Ok(None),
        Some(CredentialInput::Value(text)) => Ok(Some(text.clone())),
        Some(CredentialInput::Secret(reference)) => {
            super::secrets::validate_name(&reference.secret)?;
            if !super::secrets::exists(services, who.tenant(), &reference.secret).await? {
                return Err(ServiceError::Validation(format!(
                    "credential: no secret named {:?} (PUT /api/v1/secrets/{})",
                    reference.secret, reference.secret
                )));
            }
            super::secrets::resolve(services, who.tenant(), &reference.secret)
                .await
                .map(Some)
        }
    }
}

/// Puts `input` on `row`: a value sealed into the row, or the secret's name
/// (resolved at each use); `None` removes the credential. `text` is what it
/// stands for (its kind is shown).
fn set_credential(
    services: &Services,
    row: &mut Repo,
    input: Option<&CredentialInput>,
    text: Option<&str>,
) -> Result<(), ServiceError> {
    row.credential = None;
    row.credential_secret = None;
    row.credential_kind = text.map(|t| {
        Credential::from_text(t, row.provider.as_deref())
            .kind()
            .to_owned()
    });
    match input {
        Some(CredentialInput::Value(value)) => {
            let context = Repo::credential_context(&row.tenant_id, &row.id);
            row.credential = Some(
                services
                    .git
                    .secrets
                    .seal(value.as_bytes(), &context)
                    .map_err(ServiceError::internal)?,
            );
        }
        Some(CredentialInput::Secret(reference)) => {
            row.credential_secret = Some(reference.secret.clone());
        }
        None => {}
    }
    Ok(())
}
