//! `settings.oidc`: people signing in to the console through an OpenID
//! Connect provider (`services::console_oidc`). Either every required
//! variable is set and valid, or none is (then the console signs in with
//! API keys only); anything in between stops startup with a message.

use super::parse::Env;
use super::{ConfigError, Secret};
use crate::domain::role::Role;

/// Longest group name, tenant id or client id accepted in the settings.
const MAX_NAME_LEN: usize = 256;
/// Most entries of `OIDC_GROUP_MAPPING`.
const MAX_MAPPINGS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct OidcSettings {
    /// The provider, when `OIDC_ISSUER_URL` is set.
    pub provider: Option<OidcProvider>,
}

#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// `OIDC_ISSUER_URL`, exactly as the ID tokens' `iss` must read.
    pub issuer: String,
    /// `OIDC_CLIENT_ID`.
    pub client_id: String,
    /// `OIDC_CLIENT_SECRET`.
    pub client_secret: Secret,
    /// `OIDC_PROVIDER_NAME`: the sign-in button's label.
    pub name: String,
    /// `OIDC_SCOPES`, `openid` first.
    pub scopes: Vec<String>,
    /// `OIDC_GROUPS_CLAIM`.
    pub groups_claim: String,
    /// `OIDC_GROUP_MAPPING`, in its order (the first match decides).
    pub mapping: Vec<GroupMapping>,
    /// `PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
}

/// One `group=tenant:role` entry; a `group` of `@example.com` stands for
/// the people whose verified email is of that domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMapping {
    pub group: String,
    pub tenant: String,
    pub role: String,
}

impl OidcProvider {
    /// Where the provider sends people back: `PUBLIC_URL/console/oidc/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/console/oidc/callback", self.public_url)
    }

    /// Where the provider sends people after signing out.
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}/console/login", self.public_url)
    }

    /// Whether cookies of the sign-in must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The tenant and role of the first entry naming one of `groups`, or
    /// the domain of `verified_email` (an email the provider vouches for).
    pub fn map<'a>(
        &'a self,
        groups: &[String],
        verified_email: Option<&str>,
    ) -> Option<&'a GroupMapping> {
        let domain = verified_email
            .and_then(|email| email.rsplit_once('@'))
            .map(|(_, domain)| domain.to_ascii_lowercase());
        self.mapping
            .iter()
            .find(|m| match m.group.strip_prefix('@') {
                Some(wanted) => domain.as_deref() == Some(wanted),
                None => groups.contains(&m.group),
            })
    }
}

impl OidcSettings {
    pub(super) fn read(env: &Env) -> Result<OidcSettings, ConfigError> {
        const DEPENDENT: &[&str] = &[
            "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET",
            "OIDC_GROUP_MAPPING",
            "PUBLIC_URL",
        ];
        // Read first, whether or not a provider is configured.
        let scopes_raw = env.string("OIDC_SCOPES");
        let groups_claim = env.string("OIDC_GROUPS_CLAIM");
        let name = env.string("OIDC_PROVIDER_NAME");
        let Some(issuer) = env.get("OIDC_ISSUER_URL") else {
            if let Some(name) = DEPENDENT.iter().find(|n| env.get(n).is_some()) {
                let value = env.get(name).unwrap_or_default();
                return Err(env.error(
                    name,
                    &value,
                    "is set but OIDC_ISSUER_URL is not (console sign-in with a provider needs it)",
                ));
            }
            return Ok(OidcSettings::default());
        };
        let required = |name: &str| {
            env.get(name).ok_or_else(|| {
                env.error(
                    name,
                    "",
                    "must be set when OIDC_ISSUER_URL is (console sign-in with a provider)",
                )
            })
        };
        crate::security::jwks::check_issuer_url(&issuer)
            .map_err(|why| env.error("OIDC_ISSUER_URL", &issuer, why))?;
        let client_id = required("OIDC_CLIENT_ID")?;
        if client_id.len() > MAX_NAME_LEN {
            return Err(env.error(
                "OIDC_CLIENT_ID",
                &client_id,
                format!("is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        let client_secret = Secret(required("OIDC_CLIENT_SECRET")?);
        let public_raw = required("PUBLIC_URL")?;
        let public_url = check_public_url(&public_raw)
            .map_err(|why| env.error("PUBLIC_URL", &public_raw, why))?;
        let mapping_raw = required("OIDC_GROUP_MAPPING")?;
        let mapping = parse_mapping(&mapping_raw)
            .map_err(|why| env.error("OIDC_GROUP_MAPPING", &mapping_raw, why))?;
        let mut scopes: Vec<String> = vec!["openid".into()];
        for scope in scopes_raw.split_whitespace() {
            if !scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(env.error(
                    "OIDC_SCOPES",
                    &scopes_raw,
                    "a scope holds only printable characters",
                ));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if groups_claim.len() > MAX_NAME_LEN {
            return Err(env.error(
                "OIDC_GROUPS_CLAIM",
                &groups_claim,
                format!("is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        if name.chars().count() > 64 {
            return Err(env.error("OIDC_PROVIDER_NAME", &name, "is longer than 64 characters"));
        }
        Ok(OidcSettings {
            provider: Some(OidcProvider {
                issuer,
                client_id,
                client_secret,
                name,
                scopes,
                groups_claim,
                mapping,
                public_url,
            }),
        })
    }
}

/// `PUBLIC_URL`: the same rules as an issuer's URL (`https://`, or
/// `http://` on loopback, which the sign-in cookies need; no credentials,
/// query or fragment). Returned without a trailing slash.
fn check_public_url(raw: &str) -> Result<String, String> {
    crate::security::jwks::check_issuer_url(raw)
        .map(|url| url.as_str().trim_end_matches('/').to_owned())
}

/// `group=tenant:role,…` (a group may itself hold `=`: the last one splits).
fn parse_mapping(raw: &str) -> Result<Vec<GroupMapping>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (group, target) = entry
            .rsplit_once('=')
            .ok_or_else(|| format!("{entry:?} is not group=tenant:role"))?;
        let (tenant, role) = target
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?} is not group=tenant:role"))?;
        let (group, tenant, role) = (group.trim(), tenant.trim(), role.trim());
        if group.is_empty() || tenant.is_empty() {
            return Err(format!("{entry:?} names no group or no tenant"));
        }
        if group.len() > MAX_NAME_LEN || tenant.len() > MAX_NAME_LEN {
            return Err(format!(
                "{entry:?} is longer than {MAX_NAME_LEN} characters"
            ));
        }
        if Role::parse(role).is_none() {
            return Err(format!("{entry:?}: the role must be {}", Role::names()));
        }
        // An email domain: matched lower case, and never empty.
        let group = match group.strip_prefix('@') {
            Some(domain) if domain.is_empty() || domain.contains('@') => {
                return Err(format!("{entry:?}: an email domain reads @example.com"));
            }
            Some(domain) => format!("@{}", domain.to_ascii_lowercase()),
            None => group.to_owned(),
        };
        out.push(GroupMapping {
            group,
            tenant: tenant.to_owned(),
            role: role.to_owned(),
        });
    }
    if out.is_empty() {
        return Err("maps no group".into());
    }
    if out.len() > MAX_MAPPINGS {
        return Err(format!("has more than {MAX_MAPPINGS} entries"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn read(pairs: &[(&str, &str)]) -> Result<OidcSettings, ConfigError> {
        let vars: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OidcSettings::read(&Env::new(&vars))
    }

    const FULL: &[(&str, &str)] = &[
        ("OIDC_ISSUER_URL", "https://idp.example.com/realms/team"),
        ("OIDC_CLIENT_ID", "claude"),
        ("OIDC_CLIENT_SECRET", "s3cret"),
        (
            "OIDC_GROUP_MAPPING",
            "ops=platform:admin, /team=a=team-a:member",
        ),
        ("PUBLIC_URL", "https://claude.example.com/"),
    ];

    #[test]
    fn a_full_provider_reads() {
        let p = read(FULL).unwrap().provider.unwrap();
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert_eq!(p.groups_claim, "groups");
        assert_eq!(
            p.redirect_uri(),
            "https://claude.example.com/console/oidc/callback"
        );
        assert!(p.is_https());
        assert_eq!(
            p.mapping[1],
            GroupMapping {
                group: "/team=a".into(),
                tenant: "team-a".into(),
                role: "member".into()
            }
        );
        let hit = p
            .map(&["x".into(), "/team=a".into(), "ops".into()], None)
            .unwrap();
        assert_eq!(hit.tenant, "platform", "the first entry decides");
        assert!(p.map(&["nobody".into()], None).is_none());
        // The secret never shows.
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn an_email_domain_maps_only_a_verified_email_of_that_domain() {
        let mut vars: Vec<(&str, &str)> = FULL
            .iter()
            .filter(|(k, _)| *k != "OIDC_GROUP_MAPPING")
            .copied()
            .collect();
        vars.push((
            "OIDC_GROUP_MAPPING",
            "ops=platform:admin,@Example.COM=team-a:viewer",
        ));
        let p = read(&vars).unwrap().provider.unwrap();
        assert_eq!(p.mapping[1].group, "@example.com");
        let hit = p.map(&[], Some("Ana@EXAMPLE.com")).unwrap();
        assert_eq!(
            (hit.tenant.as_str(), hit.role.as_str()),
            ("team-a", "viewer")
        );
        assert!(p.map(&[], Some("ana@example.com.evil.io")).is_none());
        assert!(p.map(&[], Some("ana@sub.example.com")).is_none());
        assert!(p.map(&[], None).is_none());
        // Groups are looked at in the mapping's order too.
        assert_eq!(
            p.map(&["ops".into()], Some("a@example.com"))
                .unwrap()
                .tenant,
            "platform"
        );
        for bad in ["@=t:member", "@a@b=t:member"] {
            vars.pop();
            vars.push(("OIDC_GROUP_MAPPING", bad));
            assert!(read(&vars).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_set_is_no_provider() {
        assert!(read(&[]).unwrap().provider.is_none());
    }

    #[test]
    fn half_a_configuration_is_refused() {
        let e = read(&[("OIDC_CLIENT_ID", "x")]).unwrap_err();
        assert_eq!(e.name, "OIDC_CLIENT_ID");
        for missing in [
            "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET",
            "OIDC_GROUP_MAPPING",
            "PUBLIC_URL",
        ] {
            let pairs: Vec<_> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let e = read(&pairs).unwrap_err();
            assert_eq!(e.name, missing);
            assert!(e.reason.contains("must be set"), "{e}");
        }
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let with = |name: &str, value: &str| {
            let mut pairs: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != name).collect();
            pairs.push((name, value));
            read(&pairs).unwrap_err()
        };
        assert_eq!(
            with("OIDC_ISSUER_URL", "http://idp.example.com").name,
            "OIDC_ISSUER_URL"
        );
        assert_eq!(
            with("PUBLIC_URL", "http://claude.example.com").name,
            "PUBLIC_URL"
        );
        assert_eq!(
            with("PUBLIC_URL", "https://x.example/?a").name,
            "PUBLIC_URL"
        );
        for mapping in ["ops", "ops=platform", "ops=platform:root", "=t:admin", ","] {
            assert_eq!(
                with("OIDC_GROUP_MAPPING", mapping).name,
                "OIDC_GROUP_MAPPING",
                "{mapping}"
            );
        }
        // The secret's value never shows in an error.
        let e = with("PUBLIC_URL", "ftp://x");
        assert!(!e.to_string().contains("s3cret"));
        // http on loopback is for a provider on the same host (and tests).
        let mut pairs: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "PUBLIC_URL" && *k != "OIDC_ISSUER_URL")
            .collect();
        pairs.push(("PUBLIC_URL", "http://127.0.0.1:8080"));
        pairs.push(("OIDC_ISSUER_URL", "http://127.0.0.1:9000"));
        let p = read(&pairs).unwrap().provider.unwrap();
        assert!(!p.is_https());
    }
}
