//! Who is on the other end: the client's address, from the socket, or from
//! `X-Forwarded-For` only when the socket's peer is one of
//! `TRUSTED_PROXIES` (anyone else could write any address there).

use std::net::IpAddr;

use ipnet::IpNet;

/// The client's address: the socket's `peer`, or, when that peer is a
/// trusted proxy, the rightmost `X-Forwarded-For` entry (`forwarded_for`:
/// the header's values in order) that is not one (the first hop no trusted
/// proxy vouches for).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage left of a trusted hop: keep the last vouched-for one.
            break;
        };
        client = canonical(ip);
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// `1.2.3.4`, `1.2.3.4:567`, `2001:db8::1` or `[2001:db8::1]:567`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    None
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `TRUSTED_PROXIES`: addresses or networks (`10.0.0.0/8`, `::1`).
pub fn parse_networks(items: &[String]) -> Result<Vec<IpNet>, String> {
    items
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an address or a network (10.0.0.0/8)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(peer: &str, xff: Option<&str>, trusted: &[&str]) -> IpAddr {
        let trusted =
            parse_networks(&trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        client_ip(peer.parse().unwrap(), xff, &trusted)
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let xff = Some("6.6.6.6, 203.0.113.7, 10.0.0.2");
        // Untrusted peer: the header is ignored.
        assert_eq!(
            ip("198.51.100.1", xff, &["10.0.0.0/8"]),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // Trusted peer: the rightmost hop no trusted proxy is.
        assert_eq!(
            ip("10.0.0.1", xff, &["10.0.0.0/8"]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(
            ip("10.0.0.1", None, &["10.0.0.1"]),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        // Garbage: the last hop a trusted proxy vouched for.
        assert_eq!(
            ip("10.0.0.1", Some("nonsense, 10.0.0.9"), &["10.0.0.0/8"]),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        assert!(parse_networks(&["not-an-ip".into()]).is_err());
    }
}
