//! Where a webhook may go: http(s) only, and never to loopback, private,
//! link-local (cloud metadata), unique-local or other internal addresses,
//! unless the operator lists the host in `WEBHOOK_ALLOWED_HOSTS`. Checked at
//! job creation and again at every delivery (DNS answers change).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    #[error("webhook_url is not a valid absolute URL: {0}")]
    Invalid(String),
    #[error("webhook_url must use http or https")]
    Scheme,
    #[error("webhook_url must not carry credentials")]
    Credentials,
    #[error("webhook_url host {0} cannot be resolved")]
    Unresolvable(String),
    #[error("webhook_url host {host} resolves to {addr}, an internal address; list the host in WEBHOOK_ALLOWED_HOSTS to allow it")]
    Internal { host: String, addr: IpAddr },
}

/// A URL that passed the checks, with the addresses to connect to (pinned,
/// so the connection goes where the check looked).
#[derive(Debug, Clone)]
pub struct CheckedUrl {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Parses and checks the scheme and form of a webhook URL (no DNS).
pub fn parse(raw: &str) -> Result<Url, UrlRefused> {
    if raw.len() > 2048 {
        return Err(UrlRefused::Invalid("longer than 2048 characters".into()));
    }
    let url = Url::parse(raw).map_err(|e| UrlRefused::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    if url.host_str().is_none() {
        return Err(UrlRefused::Invalid("no host".into()));
    }
    Ok(url)
}

/// Parses, resolves and checks every address the host resolves to.
pub async fn check(raw: &str, allowed_hosts: &[String]) -> Result<CheckedUrl, UrlRefused> {
    let url = parse(raw)?;
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.clone(), port)),
    )
    .await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return Err(UrlRefused::Unresolvable(host)),
    };
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable(host));
    }
    let allowed = allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
    if !allowed {
        if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
            return Err(UrlRefused::Internal {
                host,
                addr: bad.ip(),
            });
        }
    }
    Ok(CheckedUrl { url, host, addrs })
}

/// Addresses a webhook must not reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique-local fc00::/7 (incl. fd00:ec2::254)
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe)
            // NAT64 metadata
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata 169.254.169.254
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn scheme_and_form() {
        assert_eq!(
            parse("ftp://example.com/x").unwrap_err(),
            UrlRefused::Scheme
        );
        assert_eq!(parse("file:///etc/passwd").unwrap_err(), UrlRefused::Scheme);
        assert_eq!(
            parse("https://u:p@example.com/").unwrap_err(),
            UrlRefused::Credentials
        );
        assert!(matches!(parse("not a url"), Err(UrlRefused::Invalid(_))));
        assert!(parse("https://example.com/hook?x=1").is_ok());
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let refused = check("http://127.0.0.1:9/hook", &[]).await.unwrap_err();
        assert!(matches!(refused, UrlRefused::Internal { .. }));
        let refused = check("http://localhost:9/hook", &[]).await.unwrap_err();
        assert!(matches!(refused, UrlRefused::Internal { .. }));
        let refused = check("http://[::1]:9/hook", &[]).await.unwrap_err();
        assert!(matches!(refused, UrlRefused::Internal { .. }));
        let ok = check("http://127.0.0.1:9/hook", &["127.0.0.1".to_string()])
            .await
            .unwrap();
        assert_eq!(ok.addrs[0].port(), 9);
    }
}
