//! The SSRF guard: outbound targets may not reach loopback, private (RFC 1918), link-local,
//! CGNAT, unique-local or site-local IPv6, cloud-metadata or otherwise non-public addresses,
//! nor any IPv6 spelling that carries an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo):
//! those are judged by the IPv4 address inside.
//!
//! Deliveries never go through a proxy from the environment (`HTTP_PROXY` and the like): a
//! proxy resolves the target itself, so this guard would never be asked.
//!
//! Checked at create time (the URL's resolved addresses) and again at connect time: hostnames
//! go through `GuardedResolver`, which drops forbidden addresses from every lookup (so a DNS
//! rebinding between the two checks does not pass), and IP-literal URLs, which bypass DNS,
//! through `check_literal`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

const HINT: &str = "refused by the SSRF guard (start with --allow-private-targets to allow private and loopback targets, e.g. for local testing)";

/// Why `ip` may not be a webhook target, or `None` when it is a public address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4).or(
                    // NAT64 and 6to4 relays, Teredo servers: routes to whatever IPv4 is inside.
                    Some("an IPv6 form of an IPv4 address (NAT64, 6to4, Teredo or compatible)")
                        .filter(|_| v6.to_ipv4_mapped().is_none()),
                );
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("unique-local (fc00::/7)")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if seg[0] & 0xffc0 == 0xfec0 {
                Some("site-local (fec0::/10)")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation (2001:db8::/32)")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] == 0x64 && seg[1] == 0xff9b {
                // Local-use NAT64 (64:ff9b:1::/48) can reach any IPv4 address too.
                Some("NAT64 (64:ff9b::/32)")
            } else {
                None
            }
        }
    }
}

/// The IPv4 address an IPv6 address carries, in the forms that reach it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but routed by some stacks),
/// NAT64 (`64:ff9b::a.b.c.d`), 6to4 (`2002:AABB:CCDD::`) and Teredo (`2001:0:…`, the client's
/// address inverted in the last 32 bits).
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = v6.segments();
    let o = v6.octets();
    let last = || Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if (seg[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified())
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4])
    {
        Some(last())
    } else if seg[0] == 0x2002 {
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else if seg[0] == 0x2001 && seg[1] == 0 {
        Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]))
    } else {
        None
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback (127.0.0.0/8)")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if o == [169, 254, 169, 254] {
        Some("cloud metadata (169.254.169.254)")
    } else if o == [168, 63, 129, 16] {
        Some("cloud metadata (Azure WireServer, 168.63.129.16)")
    } else if ip.is_link_local() {
        Some("link-local (169.254.0.0/16)")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("CGNAT (100.64.0.0/10)")
    } else if o[0] == 0 || ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("non-routable")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments (192.0.0.0/24)")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking (198.18.0.0/15)")
    } else if matches!(o[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113]) {
        Some("documentation (TEST-NET)")
    } else {
        None
    }
}

/// Refuses an IP-literal URL host that is forbidden (hostnames are checked by the resolver).
pub fn check_literal(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err(format!("{url:?} is not a valid URL"));
    };
    let Some(host) = parsed.host_str() else {
        return Ok(());
    };
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(()); // a hostname: the resolver checks it
    };
    match forbidden(ip) {
        Some(kind) => Err(format!("target address {ip} is {kind}: {HINT}")),
        None => Ok(()),
    }
}

/// Resolves a target's host now and refuses it if any address it resolves to is forbidden.
pub async fn check_target(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    check_literal(url.as_str(), false)?;
    let Some(host) = url.host_str() else {
        return Err("the URL has no host".into());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    for a in &addrs {
        if let Some(kind) = forbidden(a.ip()) {
            return Err(format!(
                "{host} resolves to {} which is {kind}: {HINT}",
                a.ip()
            ));
        }
    }
    Ok(())
}

/// A DNS resolver for reqwest that never yields a forbidden address.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| forbidden(a.ip()).is_none())
                .collect();
            if addrs.is_empty() {
                let e = io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{host} resolves only to non-public addresses: {HINT}"),
                );
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_forbidden_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::",
            // The spellings issue 21 found accepted, and their relatives.
            "::127.0.0.1",
            "fec0::1",
            "168.63.129.16",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "64:ff9b:1::a00:1",
            "64:ff9b::808:808",
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo for 127.0.0.1
            "2001:db8::1",
            "192.0.2.1",
        ] {
            assert!(
                forbidden(ip.parse().unwrap()).is_some(),
                "{ip} must be refused"
            );
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
            "2a00:1450:4001:80e::200e",
        ] {
            assert!(forbidden(ip.parse().unwrap()).is_none(), "{ip} is public");
        }
    }

    #[test]
    fn literal_urls_are_checked_without_dns() {
        assert!(check_literal("http://127.0.0.1:8080/x", false).is_err());
        assert!(check_literal("http://[::1]/x", false).is_err());
        assert!(
            check_literal("http://169.254.169.254/latest/meta-data", false)
                .unwrap_err()
                .contains("metadata")
        );
        assert!(check_literal("http://[::127.0.0.1]/x", false).is_err());
        assert!(check_literal("http://[2002:7f00:1::]/x", false).is_err());
        assert!(check_literal("http://127.0.0.1/x", true).is_ok());
        assert!(check_literal("https://example.com/x", false).is_ok());
    }
}
