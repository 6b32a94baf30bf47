//! Where a webhook may go: http(s) only, and only to public unicast
//! addresses: every special-purpose range of the IANA registries (loopback,
//! private, link-local and cloud metadata, shared, documentation,
//! benchmarking, reserved, multicast, NAT64 and other translation prefixes,
//! 6to4, Teredo, unique-local) is refused, unless the operator lists the
//! host in `WEBHOOK_ALLOWED_HOSTS`. Checked at job creation and again at
//! every delivery (DNS answers change). A refusal never says what the host
//! resolved to, so the check cannot be used to map internal DNS. The
//! agents' egress proxy applies the same address rules (`resolve_checked`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::Url;

/// Why a host is refused, in the words a client sees: the same whether it
/// does not resolve or resolves to a refused address.
const NOT_PUBLIC: &str = "does not resolve to a public address (loopback, private, link-local and \
    other special-purpose addresses are refused; an operator may exempt a host with \
    WEBHOOK_ALLOWED_HOSTS)";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlRefused {
    #[error("webhook_url is not a valid absolute URL: {0}")]
    Invalid(String),
    #[error("webhook_url must use http or https")]
    Scheme,
    #[error("webhook_url must not carry credentials")]
    Credentials,
    #[error("webhook_url host {0} {NOT_PUBLIC}")]
    Unresolvable(String),
    /// `addr` is for the server's log only.
    #[error("webhook_url host {host} {NOT_PUBLIC}")]
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
    let addrs = match resolve_checked(&host, port, allowed_hosts).await {
        Ok(addrs) => addrs,
        Err(Unreachable::Unresolvable) => return Err(UrlRefused::Unresolvable(host)),
        Err(Unreachable::Internal(addr)) => {
            tracing::info!(host = %host, addr = %addr, "webhook URL refused: special-purpose address");
            return Err(UrlRefused::Internal { host, addr });
        }
    };
    Ok(CheckedUrl { url, host, addrs })
}

/// Why a host is not reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// No answer (or no address) within the time limit.
    Unresolvable,
    /// One of its addresses is special-purpose (for the server's log only).
    Internal(IpAddr),
}

/// Resolves `host` and checks every address it resolves to; a host listed
/// in `allowed_hosts` may resolve to anything. Also used by the agents'
/// egress proxy, with its own list.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allowed_hosts: &[String],
) -> Result<Vec<SocketAddr>, Unreachable> {
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.to_owned(), port)),
    )
    .await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return Err(Unreachable::Unresolvable),
    };
    if addrs.is_empty() {
        return Err(Unreachable::Unresolvable);
    }
    let allowed = allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    if !allowed {
        if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
            return Err(Unreachable::Internal(bad.ip()));
        }
    }
    Ok(addrs)
}

/// Addresses a webhook must not reach: anything but public unicast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // ::ffff:a.b.c.d reaches a.b.c.d.
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

/// IPv4 special-purpose registry (RFC 6890 and updates), multicast and the
/// reserved 240/4 (with the broadcast address).
const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 31, 196, 0), 24), // AS112
    (Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(192, 175, 48, 0), 24), // AS112 direct delegation
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast
];

/// IPv6 special-purpose ranges inside global unicast (2000::/3); everything
/// outside it (loopback, unspecified, IPv4-compatible, NAT64 `64:ff9b::/96`
/// and `64:ff9b:1::/48`, discard, unique-local, link-local, multicast, ...)
/// is refused as a whole.
const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF assignments, Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4 (embeds any IPv4)
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // AS112
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    SPECIAL_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - u32::from(len));
        ip & mask == u32::from(net)
    })
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let ip = u128::from(ip);
    let global_unicast = ip >> 125 == 0b001;
    !global_unicast
        || SPECIAL_V6.iter().any(|&(net, len)| {
            let mask = u128::MAX << (128 - u32::from(len));
            ip & mask == u128::from(net)
        })
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
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.251",
            "192.88.99.1",
            "64:ff9b::808:808",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:5",
            "100::1",
            "::10.0.0.1",
            "2001::1",
            "2001:db8::1",
            "2002:c0a8:101::1",
            "3fff::1",
            "ff02::1",
            "5f00::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.255",
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
        assert!(!refused.to_string().contains("::1]"), "{refused}");
        let ok = check("http://127.0.0.1:9/hook", &["127.0.0.1".to_string()])
            .await
            .unwrap();
        assert_eq!(ok.addrs[0].port(), 9);
    }
}
