//! Which IP addresses a webhook may never reach (the SSRF guard's table).
//!
//! A webhook URL is chosen by a user, and the request is made from inside
//! our network, so every address that is not on the public internet is
//! refused: loopback, private and shared (CGNAT) ranges, link-local
//! (including the cloud metadata services), multicast and broadcast, and
//! the reserved blocks. IPv6 forms that carry an IPv4 address (mapped,
//! compatible, NAT64, 6to4) are judged by the IPv4 address inside, since
//! that is where the packets end up. Documentation ranges are allowed:
//! they route nowhere, and tests use them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is forbidden as a webhook target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressCategory {
    /// `127.0.0.0/8`, `::1`: this machine. Allowed only with
    /// [`UrlPolicy::allow_loopback`](crate::UrlPolicy::allow_loopback).
    Loopback,
    /// `0.0.0.0/8` ("this network"; `0.0.0.0` reaches this machine on
    /// Linux) and `::`.
    Unspecified,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918), the
    /// deprecated IPv6 site-local `fec0::/10` and the local-use NAT64 prefix
    /// `64:ff9b:1::/48`.
    Private,
    /// `100.64.0.0/10`, the carrier-grade NAT shared address space
    /// (RFC 6598; also home of some cloud metadata services).
    SharedAddressSpace,
    /// `169.254.0.0/16` and `fe80::/10`.
    LinkLocal,
    /// A cloud instance metadata service: `169.254.169.254` and AWS's
    /// `fd00:ec2::254`.
    CloudMetadata,
    /// `fc00::/7`, IPv6 unique local addresses.
    UniqueLocal,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Blocks that are not globally routable: `192.0.0.0/24` (IETF protocol
    /// assignments), `198.18.0.0/15` (benchmarking), `240.0.0.0/4` (future
    /// use) and `100::/64` (discard-only).
    Reserved,
}

impl AddressCategory {
    /// A short, stable, machine-readable name ("loopback", "private", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AddressCategory::Loopback => "loopback",
            AddressCategory::Unspecified => "unspecified",
            AddressCategory::Private => "private",
            AddressCategory::SharedAddressSpace => "shared_address_space",
            AddressCategory::LinkLocal => "link_local",
            AddressCategory::CloudMetadata => "cloud_metadata",
            AddressCategory::UniqueLocal => "unique_local",
            AddressCategory::Multicast => "multicast",
            AddressCategory::Broadcast => "broadcast",
            AddressCategory::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressCategory::Loopback => "loopback",
            AddressCategory::Unspecified => "unspecified address",
            AddressCategory::Private => "private network",
            AddressCategory::SharedAddressSpace => "shared address space (carrier-grade NAT)",
            AddressCategory::LinkLocal => "link-local",
            AddressCategory::CloudMetadata => "cloud metadata service",
            AddressCategory::UniqueLocal => "IPv6 unique local",
            AddressCategory::Multicast => "multicast",
            AddressCategory::Broadcast => "broadcast",
            AddressCategory::Reserved => "reserved range",
        })
    }
}

/// The category that makes `ip` unfit as a webhook target, or `None` for an
/// ordinary public address (documentation ranges included).
///
/// Loopback is reported as [`AddressCategory::Loopback`] whatever the
/// policy; [`is_forbidden`] applies `allow_loopback`.
pub fn classify(ip: IpAddr) -> Option<AddressCategory> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether a webhook may not be sent to `ip`: see [`AddressCategory`] for the
/// table. Loopback is allowed only when `allow_loopback` (development and
/// tests); IPv4-mapped and IPv4-compatible IPv6 addresses (`::ffff:a.b.c.d`)
/// are judged by the IPv4 address they carry.
pub fn is_forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    match classify(ip) {
        None => false,
        Some(AddressCategory::Loopback) => !allow_loopback,
        Some(_) => true,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressCategory> {
    use AddressCategory::*;
    let [a, b, c, d] = ip.octets();
    let category = match (a, b, c, d) {
        (0, ..) => Unspecified,
        (127, ..) => Loopback,
        (10, ..) | (172, 16..=31, ..) | (192, 168, ..) => Private,
        (100, 64..=127, ..) => SharedAddressSpace,
        (169, 254, 169, 254) => CloudMetadata,
        (169, 254, ..) => LinkLocal,
        (192, 0, 0, _) | (198, 18..=19, ..) => Reserved,
        (224..=239, ..) => Multicast,
        (255, 255, 255, 255) => Broadcast,
        (240..=255, ..) => Reserved,
        _ => return None,
    };
    Some(category)
}

/// AWS's IPv6 instance metadata endpoint (Nitro instances).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

fn classify_v6(ip: Ipv6Addr) -> Option<AddressCategory> {
    use AddressCategory::*;
    let s = ip.segments();
    // The IPv4 address in the low 32 bits, for the forms that carry one.
    let low_v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let category = match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Loopback,
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => return classify_v4(low_v4),
        // 64:ff9b::a.b.c.d, the well-known NAT64 prefix: a NAT64 gateway
        // forwards it to a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => return classify_v4(low_v4),
        [0x64, 0xff9b, 1, ..] => Private,
        // 2002:AABB:CCDD::/48, 6to4: relays forward it to AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => {
            return classify_v4(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8));
        }
        [0x100, 0, 0, 0, ..] => Reserved,
        _ if ip == AWS_METADATA_V6 => CloudMetadata,
        [first, ..] if first & 0xfe00 == 0xfc00 => UniqueLocal,
        [first, ..] if first & 0xffc0 == 0xfe80 => LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Private,
        [first, ..] if first & 0xff00 == 0xff00 => Multicast,
        _ => return None,
    };
    Some(category)
}

#[cfg(test)]
mod tests {
    use super::AddressCategory::*;
    use super::*;

    /// Every range of the table, at its edges where it has some, and the
    /// public neighbours just outside.
    #[test]
    fn classify_covers_every_range() {
        let table: &[(&str, Option<AddressCategory>)] = &[
            // IPv4
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("192.168.0.1", Some(Private)),
            ("192.168.255.255", Some(Private)),
            ("192.167.255.255", None),
            ("100.64.0.0", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("100.100.100.200", Some(SharedAddressSpace)),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.254.0.1", Some(LinkLocal)),
            ("169.254.255.255", Some(LinkLocal)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("169.253.255.255", None),
            ("192.0.0.8", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("198.19.255.255", Some(Reserved)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            // Public and documentation addresses are fine.
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("93.184.215.14", None),
            ("192.0.2.1", None),
            ("198.51.100.7", None),
            ("203.0.113.9", None),
            ("223.255.255.255", None),
            // IPv6
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fe80::1", Some(LinkLocal)),
            ("febf:ffff::1", Some(LinkLocal)),
            ("fec0::1", Some(Private)),
            ("fc00::1", Some(UniqueLocal)),
            ("fdff:ffff::1", Some(UniqueLocal)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("fd00:ec2::253", Some(UniqueLocal)),
            ("ff02::1", Some(Multicast)),
            ("ff05::1:3", Some(Multicast)),
            ("100::1", Some(Reserved)),
            ("64:ff9b:1::1", Some(Private)),
            ("2606:4700:4700::1111", None),
            ("2001:4860:4860::8888", None),
            ("2001:db8::1", None),
            ("fbff:ffff::1", None),
            // IPv6 forms carrying an IPv4 address: judged by that address.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::ffff:100.64.0.1", Some(SharedAddressSpace)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("::10.0.0.1", Some(Private)),
            ("::8.8.8.8", None),
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(CloudMetadata)),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:c0a8:101::1", Some(Private)),
            ("2002:808:808::1", None),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *expected, "{text}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_on_request() {
        for text in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = text.parse().unwrap();
            assert!(is_forbidden(ip, false), "{text}");
            assert!(!is_forbidden(ip, true), "{text}");
        }
    }

    #[test]
    fn allow_loopback_allows_nothing_else() {
        for text in ["0.0.0.0", "::", "10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:192.168.1.1"] {
            let ip: IpAddr = text.parse().unwrap();
            assert!(is_forbidden(ip, true), "{text}");
        }
        for text in ["8.8.8.8", "2001:db8::1", "::ffff:1.1.1.1"] {
            let ip: IpAddr = text.parse().unwrap();
            assert!(!is_forbidden(ip, false), "{text}");
        }
    }
}
