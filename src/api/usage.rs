//! `GET /usage` and `POST /tokens/count`.

use crate::identity::Who;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};

use super::envelope::{self, Envelope};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::domain::money::micros_to_usd;
use claude_code_api_core::services::usage;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Another tenant's usage (the owner only).
    tenant: Option<String>,
}

/// A tenant's spend and counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageData {
    #[serde(flatten)]
    usage: usage::Usage,
    /// USD, for display; `cost_micros` is exact.
    cost: f64,
    /// What the tenant's agents keep on disk (its workspaces and CLI state),
    /// measured now (or, for very large trees, as recently as the spacing
    /// of measurements allows), and its quota.
    disk: claude_code_api_core::disk::DiskStatus,
}

/// `{data, meta}` plus `user_id` (the tenant), where the original put it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDocument {
    data: UsageData,
    meta: envelope::Meta,
    user_id: String,
}

/// Own tenant; an admin may name another with `?tenant=`.
#[utoipa::path(
    get,
    path = "/api/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "The tenant's usage, with the last 30 active days", body = UsageDocument),
        (status = 403, description = "Another tenant, named by a key that is not an admin's", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_usage(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (usage, disk) = usage::of_tenant(&state.services, &who, query.into_inner().tenant).await?;
    Ok(HttpResponse::Ok().json(UsageDocument {
        user_id: usage.tenant.clone(),
        meta: envelope::meta(&req),
        data: UsageData {
            cost: micros_to_usd(usage.cost_micros),
            usage,
            disk,
        },
    }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountTokens {
    text: String,
}

/// An estimate: no Claude tokenizer is available offline.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct TokenCount {
    characters: usize,
    words: usize,
    estimated_tokens: usize,
    method: &'static str,
}

/// No tokenizer for Claude models exists offline, so this is the documented
/// heuristic: about 4 characters per token for prose, never fewer tokens
/// than 4 per 3 words (which covers code and short words).
pub fn estimate(text: &str) -> TokenCount {
    let characters = text.chars().count();
    let words = text.split_whitespace().count();
    let by_chars = characters.div_ceil(4);
    let by_words = (words * 4).div_ceil(3);
    TokenCount {
        characters,
        words,
        estimated_tokens: by_chars.max(by_words),
        method: "heuristic: max(ceil(characters / 4), ceil(words * 4 / 3))",
    }
}

/// Estimates the tokens of a text, without calling a model.
#[utoipa::path(
    post,
    path = "/api/v1/tokens/count",
    tag = "usage",
    request_body = CountTokens,
    responses(
        (status = 200, description = "The estimate and how it was made", body = Envelope<TokenCount>),
        (status = 422, description = "No `text`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn count_tokens(
    req: HttpRequest,
    _caller: Who,
    body: super::envelope::JsonObject<CountTokens>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(&req, estimate(&body.text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heuristic_is_what_the_readme_says() {
        let empty = estimate("");
        assert_eq!(
            (empty.characters, empty.words, empty.estimated_tokens),
            (0, 0, 0)
        );
        let prose = estimate("The quick brown fox jumps over the lazy dog.");
        assert_eq!(prose.characters, 44);
        assert_eq!(prose.words, 9);
        assert_eq!(prose.estimated_tokens, 12);
        let dense = estimate("a b c d e f");
        assert_eq!(dense.estimated_tokens, 8);
        assert_eq!(estimate("héllo").characters, 5);
    }
}
