//! The address policy (SSRF guard): which IP addresses the probe may connect to.
//!
//! A monitor that accepts URLs from users must not become a way into the network it runs in.
//! The policy is applied to the *resolved* address at connect time (see `net.rs`), to IP
//! literals before any request (reqwest's resolver hook never sees them), and again on every
//! redirect hop. Webhook delivery reuses it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// Which non-public ranges the operator allows, on top of all public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// When true, every address is allowed (the CLI default: it runs where its user is).
    allow_all: bool,
    /// Non-public ranges explicitly allowed.
    allow: Vec<IpNet>,
}

/// A CIDR in an allow-list that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid CIDR '{input}' in the address allow-list: {reason} (expected e.g. 10.0.0.0/8 or fd00::/8)"
)]
pub struct InvalidCidr {
    input: String,
    reason: String,
}

impl AddressPolicy {
    /// Public addresses only: the library and daemon default.
    pub fn public_only() -> Self {
        AddressPolicy::default()
    }

    /// Everything, private ranges included (the CLI without `--deny-private`).
    pub fn allow_all() -> Self {
        AddressPolicy {
            allow_all: true,
            allow: Vec::new(),
        }
    }

    /// Public addresses plus the given ranges.
    pub fn with_allowed(allow: Vec<IpNet>) -> Self {
        AddressPolicy {
            allow_all: false,
            allow,
        }
    }

    /// Parse a comma- or space-separated allow-list (`MCPWATCH_ALLOW_PRIVATE_CIDRS`).
    /// A bare address is taken as a single-host range.
    pub fn parse_allow_list(list: &str) -> Result<Self, InvalidCidr> {
        let mut allow = Vec::new();
        for item in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let net = IpNet::from_str(item)
                .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                .map_err(|e| InvalidCidr {
                    input: item.to_string(),
                    reason: e.to_string(),
                })?;
            allow.push(net);
        }
        Ok(AddressPolicy::with_allowed(allow))
    }

    /// Whether the probe may connect to `ip`.
    /// Whether `ip` is a non-public address (private, loopback…) that this policy allows:
    /// where plain HTTP is accepted for OAuth endpoints (a test, an internal deployment).
    pub fn allows_private(&self, ip: IpAddr) -> bool {
        non_public_range(canonical(ip)).is_some() && self.permits(ip)
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.allow_all {
            return true;
        }
        let ip = canonical(ip);
        match non_public_range(ip) {
            None => true,
            Some(_) => self.allow.iter().any(|net| net.contains(&ip)),
        }
    }

    /// `Ok` if permitted, else the name of the range that blocks it (for the error message).
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        if self.permits(ip) {
            Ok(())
        } else {
            let range = non_public_range(canonical(ip)).unwrap_or("non-public");
            Err(BlockedAddress { ip, range })
        }
    }
}

/// An address the policy refused, with the range that made it non-public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address {ip} is {range} and not allow-listed")]
pub struct BlockedAddress {
    pub ip: IpAddr,
    pub range: &'static str,
}

/// IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) forms are judged as the
/// IPv4 address they carry, so `::ffff:127.0.0.1` cannot slip past a loopback rule.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let seg = v6.segments();
            // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1); `::` and `::1` stay IPv6.
            if seg[..6].iter().all(|s| *s == 0) && (seg[6] != 0 || seg[7] > 1) {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The name of the special-purpose range `ip` falls in, or `None` for a public address.
fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let range = match o {
        [0, ..] => "unspecified (0.0.0.0/8)",
        [10, ..] => "private (10.0.0.0/8)",
        [100, b, ..] if (64..128).contains(&b) => "shared/CGNAT (100.64.0.0/10)",
        [127, ..] => "loopback (127.0.0.0/8)",
        [169, 254, ..] => "link-local (169.254.0.0/16, incl. cloud metadata)",
        [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
        [192, 0, 0, _] => "IETF protocol assignments (192.0.0.0/24)",
        [192, 0, 2, _] => "documentation (192.0.2.0/24)",
        [192, 88, 99, _] => "6to4 relay anycast (192.88.99.0/24)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking (198.18.0.0/15)",
        [198, 51, 100, _] => "documentation (198.51.100.0/24)",
        [203, 0, 113, _] => "documentation (203.0.113.0/24)",
        [255, 255, 255, 255] => "broadcast",
        [a, ..] if a >= 240 => "reserved (240.0.0.0/4)",
        [a, ..] if (224..240).contains(&a) => "multicast (224.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    let range = if ip.is_unspecified() {
        "unspecified (::)"
    } else if ip.is_loopback() {
        "loopback (::1)"
    } else if seg[0] & 0xfe00 == 0xfc00 {
        "unique local (fc00::/7)"
    } else if seg[0] & 0xffc0 == 0xfe80 {
        "link-local (fe80::/10)"
    } else if seg[0] & 0xffc0 == 0xfec0 {
        "site-local (fec0::/10)"
    } else if seg[0] & 0xff00 == 0xff00 {
        "multicast (ff00::/8)"
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        "documentation (2001:db8::/32)"
    } else if seg[0] == 0x0100 && seg[1..4] == [0, 0, 0] {
        "discard-only (100::/64)"
    } else if seg[0] == 0x2002 {
        // 6to4 embeds an IPv4 address: judge it by that address.
        let embedded = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return v4_range(embedded).map(|_| "6to4 wrapping a non-public IPv4 (2002::/16)");
    } else if seg[0] == 0x0064 && seg[1] == 0xff9b {
        // NAT64 well-known prefix: judge the embedded IPv4 address.
        let embedded = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return v4_range(embedded).map(|_| "NAT64 wrapping a non-public IPv4 (64:ff9b::/96)");
    } else {
        return None;
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_every_special_range_by_default() {
        let p = AddressPolicy::public_only();
        for s in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.10",
            "198.51.100.1",
            "203.0.113.5",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(!p.permits(ip(s)), "{s} should be blocked");
            assert!(p.check(ip(s)).is_err());
        }
    }

    #[test]
    fn permits_public_addresses() {
        let p = AddressPolicy::public_only();
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(p.permits(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn allow_list_opens_only_its_ranges() {
        let p = AddressPolicy::parse_allow_list("127.0.0.0/8, fd00::/8 10.0.0.5").unwrap();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(p.permits(ip("fd00::7")));
        assert!(p.permits(ip("10.0.0.5")));
        assert!(!p.permits(ip("10.0.0.6")));
        assert!(!p.permits(ip("169.254.169.254")));
    }

    #[test]
    fn bad_cidr_is_named_in_the_error() {
        let err = AddressPolicy::parse_allow_list("10.0.0.0/8,10.0.0.0/33")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'10.0.0.0/33'"), "{err}");
    }

    #[test]
    fn error_names_the_range() {
        let err = AddressPolicy::public_only()
            .check(ip("169.254.169.254"))
            .unwrap_err();
        assert!(err.to_string().contains("link-local"), "{err}");
    }

    proptest! {
        /// Every IPv4 address gets the same answer in its IPv4-mapped and IPv4-compatible forms.
        #[test]
        fn mapped_forms_agree_with_ipv4(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            let p = AddressPolicy::public_only();
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(p.permits(IpAddr::V4(v4)), p.permits(mapped));
            if raw > 1 {
                let compat = IpAddr::V6(v4.to_ipv6_compatible());
                prop_assert_eq!(p.permits(IpAddr::V4(v4)), p.permits(compat));
            }
        }

        /// Anything inside an allowed range is permitted, whatever else the policy says.
        #[test]
        fn allowed_range_always_wins(raw in any::<u32>(), len in 8u8..=32) {
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from(raw), len).unwrap().trunc();
            let p = AddressPolicy::with_allowed(vec![IpNet::V4(net)]);
            prop_assert!(p.permits(IpAddr::V4(net.network())));
            prop_assert!(p.permits(IpAddr::V4(net.broadcast())));
        }

        /// The 10/8, 127/8 and 169.254/16 blocks are refused whatever the low bits.
        #[test]
        fn private_blocks_refused(low in any::<u32>()) {
            let p = AddressPolicy::public_only();
            for high in [10u32 << 24, 127u32 << 24, (169u32 << 24) | (254 << 16)] {
                let mask = if high >> 24 == 169 { 0xffff } else { 0xff_ffff };
                prop_assert!(!p.permits(IpAddr::V4(Ipv4Addr::from(high | (low & mask)))));
            }
        }
    }
}
