//! Addresses by the role they play in a route, checked in canonical form wherever they enter.
//!
//! An address reaches the policy from engine facts (bridge gateways), from the gateway's host
//! (its primary IPv4), from the operator (flags, environment, `gateway.toml`, the facts file's
//! `overrides`) and from code (a runtime's plan, `Overrides` built by an embedder). Each of them
//! goes through [`check`] for the role it is about to play, so that no source can turn into a
//! route that cannot work or a bind wider than the route needs.
//!
//! Checks run on the canonical form ([`canonical`]): Linux takes an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) on a dual-stack socket as the IPv4 address itself, so `::ffff:0.0.0.0`
//! binds every IPv4 interface even though `Ipv6Addr::is_unspecified` says it is not `::`.
//!
//! This module depends on nothing else in the crate but [`consts`](crate::consts) and
//! [`display_value`](crate::display_value), so every other module may use it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::consts::{ORBSTACK_HOST_IP, PASTA_MAPPED_HOST_IP};

/// Container-side addresses that runtimes document (or are observed to use) although their
/// range is otherwise no host's: Podman's pasta maps link-local 169.254.1.2 to the host, and
/// OrbStack's host-NAT address sits in 0.0.0.0/8. Only these pass as the container side.
const DOCUMENTED_CONTAINER_TARGETS: [IpAddr; 2] = [PASTA_MAPPED_HOST_IP, ORBSTACK_HOST_IP];

/// What an address is for, which decides what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AddressRole {
    /// What `host.openshell.internal` maps to inside a sandbox (`host_gateway_ip`): a unicast
    /// address that leads out of the container to this host.
    ContainerTarget,
    /// What `host.openshell.internal` maps to for a sandbox in the engine's host network
    /// namespace: as [`ContainerTarget`](Self::ContainerTarget), except that loopback is fit,
    /// because that namespace may be the gateway host's own. Whether it is, is the runtime's to
    /// say (`resolve` refuses a loopback that stays in a VM's or RootlessKit's namespace). Also
    /// the check where `host_gateway_ip` enters, before the network mode is known.
    HostNetworkTarget,
    /// Where the gateway listens, as a runtime's plan or an override derived it: an address of
    /// this host, loopback included, never a wildcard.
    Bind,
    /// A bind address the operator gave explicitly (`bind`, `--bind`, `bind_address`): as
    /// [`Bind`](Self::Bind), except that a wildcard (`0.0.0.0`, `::`) is the operator's
    /// deliberate choice. The callback listener still refuses it unless told otherwise.
    OperatorBind,
    /// The gateway of a sandbox bridge network as the engine reports it: a unicast address of
    /// this host on that bridge.
    BridgeGateway,
    /// The gateway host's primary address (the source of its default route).
    HostPrimary,
}

impl AddressRole {
    /// The role as a noun phrase, for messages.
    fn noun(self) -> &'static str {
        match self {
            AddressRole::ContainerTarget => {
                "the address sandboxes call (host.openshell.internal, host_gateway_ip)"
            }
            AddressRole::HostNetworkTarget => {
                "the address host-network sandboxes call (host.openshell.internal, host_gateway_ip)"
            }
            AddressRole::Bind | AddressRole::OperatorBind => "the gateway's bind address",
            AddressRole::BridgeGateway => "a bridge network's gateway",
            AddressRole::HostPrimary => "the host's primary address (host_ipv4)",
        }
    }

    /// What to give instead, for messages.
    fn fix(self) -> &'static str {
        match self {
            AddressRole::ContainerTarget => {
                "give a unicast address that leads from the sandbox to this host (loopback only with host networking)"
            }
            AddressRole::HostNetworkTarget => {
                "give a unicast address that leads from the engine's host network namespace to this host"
            }
            AddressRole::Bind => {
                "bind an address of this host; a wildcard only as an explicit bind setting"
            }
            AddressRole::OperatorBind => "bind an address of this host, or a wildcard",
            AddressRole::BridgeGateway => {
                "give the sandbox network a subnet with a unicast gateway, or set host_gateway_ip and bind"
            }
            AddressRole::HostPrimary => {
                "give the host's default-route source address, or set host_gateway_ip and bind"
            }
        }
    }
}

impl fmt::Display for AddressRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// What makes an address unfit for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Unfit {
    /// `0.0.0.0` or `::`: every interface as a bind, nowhere as a destination.
    Unspecified,
    /// 127.0.0.0/8 or `::1`: inside a container, the container itself.
    Loopback,
    /// 224.0.0.0/4 or ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 240.0.0.0/4, reserved for future use.
    Reserved,
    /// 169.254.0.0/16 (cloud metadata lives at 169.254.169.254) or fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 other than `0.0.0.0`: "this network", a source address only.
    ThisNetwork,
    /// `::a.b.c.d`, the IPv4-compatible form RFC 4291 deprecated: no stack routes it as IPv4.
    Ipv4Compatible,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unfit::Unspecified => "is the unspecified address (every interface)",
            Unfit::Loopback => "is a loopback address",
            Unfit::Multicast => "is a multicast address",
            Unfit::Broadcast => "is the broadcast address",
            Unfit::Reserved => "is in 240.0.0.0/4, which is reserved",
            Unfit::LinkLocal => "is a link-local address",
            Unfit::ThisNetwork => "is in 0.0.0.0/8, which names this network, not a host",
            Unfit::Ipv4Compatible => "is a deprecated IPv4-compatible IPv6 address",
        })
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not an address at all.
    #[error("{value} is not an IPv4 or IPv6 address")]
    Syntax {
        /// The text (sanitised).
        value: String,
    },
    /// An address followed by `/` and something that is not a prefix length.
    #[error("{value}: the text after '/' is not a prefix length (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix {
        /// The text (sanitised).
        value: String,
    },
    /// An address that cannot serve its role.
    #[error(
        "{value}{} {reason}, so it cannot be {role}; to fix: {}",
        mapped_note(*addr, *canonical),
        role.fix()
    )]
    Unfit {
        /// The address as written (sanitised), or as displayed when it was not parsed here.
        value: String,
        /// The address as given.
        addr: IpAddr,
        /// Its canonical form, which was checked.
        canonical: IpAddr,
        /// The role it was given for.
        role: AddressRole,
        /// What makes it unfit.
        reason: Unfit,
    },
}

fn mapped_note(addr: IpAddr, canonical: IpAddr) -> String {
    if addr == canonical {
        String::new()
    } else {
        format!(" (IPv4-mapped {canonical})")
    }
}

/// The canonical form of an address: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) becomes the
/// IPv4 address it stands for; every other address is itself.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses an address setting or fact into canonical form. Surrounding whitespace, brackets
/// (`[fd00::1]`) and a prefix length (`10.89.0.1/24`, as engines sometimes report gateways) are
/// accepted; anything else after `/` is an error, never silently dropped.
pub fn parse(s: &str) -> Result<IpAddr, AddressError> {
    parse_as_written(s).map(canonical)
}

/// [`parse`] without canonicalising, so that a check can name the address as written.
fn parse_as_written(s: &str) -> Result<IpAddr, AddressError> {
    let shown = || crate::evidence::display_value(s);
    let trimmed = s.trim();
    let (addr, prefix) = match trimmed.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (trimmed, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip = addr
        .parse::<IpAddr>()
        .map_err(|_| AddressError::Syntax { value: shown() })?;
    if let Some(p) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let fits = !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u8>().is_ok_and(|n| n <= max);
        if !fits {
            return Err(AddressError::Prefix { value: shown() });
        }
    }
    Ok(ip)
}

/// Checks that `ip` can serve `role` and returns its canonical form. The check runs on the
/// canonical form, so `::ffff:0.0.0.0` is the wildcard `0.0.0.0` it binds as.
pub fn check(ip: IpAddr, role: AddressRole) -> Result<IpAddr, AddressError> {
    check_written(ip, role, || ip.to_string())
}

fn check_written(
    ip: IpAddr,
    role: AddressRole,
    written: impl FnOnce() -> String,
) -> Result<IpAddr, AddressError> {
    let c = canonical(ip);
    match classify(c) {
        Some(reason) if !permits(role, reason, c) => Err(AddressError::Unfit {
            value: written(),
            addr: ip,
            canonical: c,
            role,
            reason,
        }),
        _ => Ok(c),
    }
}

/// [`parse`], then [`check`] for `role`.
pub fn parse_for(s: &str, role: AddressRole) -> Result<IpAddr, AddressError> {
    check_written(parse_as_written(s)?, role, || {
        crate::evidence::display_value(s.trim())
    })
}

/// A bind address the route ends up with: a wildcard passes only when it is exactly the bind
/// the operator set (`operator`), never when a plan or a derived bind produced it.
pub(crate) fn check_bind(bind: IpAddr, operator: Option<IpAddr>) -> Result<IpAddr, AddressError> {
    let role = if operator.map(canonical) == Some(canonical(bind)) {
        AddressRole::OperatorBind
    } else {
        AddressRole::Bind
    };
    check(bind, role)
}

/// What is special about a canonical address, if anything.
fn classify(ip: IpAddr) -> Option<Unfit> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Unfit> {
    let first = ip.octets()[0];
    Some(if ip.is_unspecified() {
        Unfit::Unspecified
    } else if ip.is_loopback() {
        Unfit::Loopback
    } else if ip.is_multicast() {
        Unfit::Multicast
    } else if ip.is_broadcast() {
        Unfit::Broadcast
    } else if first >= 240 {
        Unfit::Reserved
    } else if ip.is_link_local() {
        Unfit::LinkLocal
    } else if first == 0 {
        Unfit::ThisNetwork
    } else {
        return None;
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Unfit> {
    Some(if ip.is_unspecified() {
        Unfit::Unspecified
    } else if ip.is_loopback() {
        Unfit::Loopback
    } else if ip.is_multicast() {
        Unfit::Multicast
    } else if ip.is_unicast_link_local() {
        Unfit::LinkLocal
    } else if ip.segments()[..6] == [0; 6] {
        // ::/96 apart from :: and ::1 (handled above); the mapped form was canonicalised away.
        Unfit::Ipv4Compatible
    } else {
        return None;
    })
}

/// Whether `role` tolerates an address that is special for `reason`.
fn permits(role: AddressRole, reason: Unfit, ip: IpAddr) -> bool {
    match (role, reason) {
        // The operator asked for every interface; the exposure says so and the listener still
        // wants its own permission.
        (AddressRole::OperatorBind, Unfit::Unspecified) => true,
        // Runtimes that forward to the host's loopback bind it.
        (AddressRole::Bind | AddressRole::OperatorBind, Unfit::Loopback) => true,
        // A host-network sandbox's loopback is the engine's host namespace's, which is the
        // gateway host's on native engines.
        (AddressRole::HostNetworkTarget, Unfit::Loopback) => true,
        (
            AddressRole::ContainerTarget | AddressRole::HostNetworkTarget,
            Unfit::LinkLocal | Unfit::ThisNetwork,
        ) => DOCUMENTED_CONTAINER_TARGETS.contains(&ip),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [AddressRole; 5] = [
        AddressRole::ContainerTarget,
        AddressRole::Bind,
        AddressRole::OperatorBind,
        AddressRole::BridgeGateway,
        AddressRole::HostPrimary,
    ];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// `role` and the outcome: `Ok(canonical)` or the reason it is unfit.
    fn check_str(s: &str, role: AddressRole) -> Result<String, Unfit> {
        match check(ip(s), role) {
            Ok(c) => Ok(c.to_string()),
            Err(AddressError::Unfit { reason, .. }) => Err(reason),
            Err(e) => panic!("{s}: unexpected {e}"),
        }
    }

    #[test]
    fn loopback_is_a_target_only_with_host_networking() {
        assert_eq!(
            check_str("127.0.0.1", AddressRole::HostNetworkTarget),
            Ok("127.0.0.1".into())
        );
        assert_eq!(
            check_str("::ffff:127.0.0.1", AddressRole::HostNetworkTarget),
            Ok("127.0.0.1".into())
        );
        assert_eq!(
            check_str("127.0.0.1", AddressRole::ContainerTarget),
            Err(Unfit::Loopback)
        );
        for bad in ["0.0.0.0", "224.0.0.1", "169.254.169.254"] {
            assert!(
                check_str(bad, AddressRole::HostNetworkTarget).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn mapped_addresses_are_checked_as_the_ipv4_they_are() {
        for wildcard in ["::ffff:0.0.0.0", "::ffff:0:0", "0:0:0:0:0:ffff:0:0"] {
            assert_eq!(canonical(ip(wildcard)), ip("0.0.0.0"));
            for role in ROLES {
                let got = check_str(wildcard, role);
                if role == AddressRole::OperatorBind {
                    assert_eq!(got, Ok("0.0.0.0".into()), "{wildcard}");
                } else {
                    assert_eq!(got, Err(Unfit::Unspecified), "{wildcard} as {role:?}");
                }
            }
        }
        assert_eq!(
            check_str("::ffff:172.18.0.1", AddressRole::BridgeGateway),
            Ok("172.18.0.1".into())
        );
        assert_eq!(
            check_str("::ffff:127.0.0.1", AddressRole::Bind),
            Ok("127.0.0.1".into())
        );
        assert_eq!(
            check_str("::ffff:224.0.0.1", AddressRole::OperatorBind),
            Err(Unfit::Multicast)
        );
        let msg = check(ip("::ffff:0.0.0.0"), AddressRole::ContainerTarget)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.starts_with("::ffff:0.0.0.0 (IPv4-mapped 0.0.0.0) is the unspecified address"),
            "{msg}"
        );
    }

    #[test]
    fn wildcards_pass_only_as_the_operators_bind() {
        for wildcard in ["0.0.0.0", "::", "::0.0.0.0", "0:0:0:0:0:0:0:0"] {
            for role in ROLES {
                let got = check_str(wildcard, role);
                assert_eq!(
                    got.is_ok(),
                    role == AddressRole::OperatorBind,
                    "{wildcard} as {role:?}: {got:?}"
                );
            }
        }
        assert!(check_bind(ip("0.0.0.0"), Some(ip("0.0.0.0"))).is_ok());
        assert!(check_bind(ip("0.0.0.0"), Some(ip("::ffff:0.0.0.0"))).is_ok());
        assert!(check_bind(ip("0.0.0.0"), None).is_err());
        assert!(check_bind(ip("0.0.0.0"), Some(ip("127.0.0.1"))).is_err());
    }

    #[test]
    fn impossible_addresses_are_refused_in_every_role() {
        for (addr, reason) in [
            ("224.0.0.1", Unfit::Multicast),
            ("239.255.255.250", Unfit::Multicast),
            ("ff02::1", Unfit::Multicast),
            ("::ffff:239.1.1.1", Unfit::Multicast),
            ("255.255.255.255", Unfit::Broadcast),
            ("240.0.0.1", Unfit::Reserved),
            ("254.1.2.3", Unfit::Reserved),
            ("169.254.169.254", Unfit::LinkLocal),
            ("fe80::1", Unfit::LinkLocal),
            ("::10.0.0.1", Unfit::Ipv4Compatible),
            ("0.1.2.3", Unfit::ThisNetwork),
        ] {
            for role in ROLES {
                assert_eq!(check_str(addr, role), Err(reason), "{addr} as {role:?}");
            }
        }
    }

    #[test]
    fn loopback_is_a_bind_but_never_a_bridge_host_or_target() {
        for lo in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0:0:0:0:0:0:0:1",
            "::ffff:127.0.0.1",
        ] {
            assert!(check_str(lo, AddressRole::Bind).is_ok(), "{lo}");
            assert!(check_str(lo, AddressRole::OperatorBind).is_ok(), "{lo}");
            for role in [
                AddressRole::ContainerTarget,
                AddressRole::BridgeGateway,
                AddressRole::HostPrimary,
            ] {
                assert_eq!(
                    check_str(lo, role),
                    Err(Unfit::Loopback),
                    "{lo} as {role:?}"
                );
            }
        }
    }

    #[test]
    fn documented_runtime_addresses_stay_usable() {
        // Addresses the policy itself routes through, from consts.rs.
        for target in [
            "192.168.65.254",
            "192.168.65.2",
            "192.168.5.2",
            "0.250.250.254",
            "192.168.127.254",
            "10.0.2.2",
            "10.0.2.1",
            "169.254.1.2",
        ] {
            assert_eq!(
                check_str(target, AddressRole::ContainerTarget),
                Ok(target.into())
            );
        }
        // They are container-side addresses, not this host's: never a bind.
        assert_eq!(
            check_str("169.254.1.2", AddressRole::Bind),
            Err(Unfit::LinkLocal)
        );
        assert_eq!(
            check_str("169.254.1.3", AddressRole::ContainerTarget),
            Err(Unfit::LinkLocal)
        );
        for ok in [
            "172.18.0.1",
            "10.89.0.1",
            "192.0.2.2",
            "fd00::1",
            "2001:db8::1",
        ] {
            for role in ROLES {
                assert_eq!(check_str(ok, role), Ok(ok.into()), "{ok} as {role:?}");
            }
        }
    }

    #[test]
    fn parse_keeps_prefix_lengths_and_refuses_anything_else_after_a_slash() {
        for (text, want) in [
            ("10.89.0.1/24", "10.89.0.1"),
            (" 10.89.0.1 ", "10.89.0.1"),
            ("fd00::1/64", "fd00::1"),
            ("[fd00::1]", "fd00::1"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("10.0.0.1/32", "10.0.0.1"),
        ] {
            assert_eq!(
                parse(text).map(|i| i.to_string()),
                Ok(want.to_string()),
                "{text}"
            );
        }
        for text in [
            "10.0.0.1/garbage",
            "10.0.0.1/",
            "10.0.0.1/33",
            "10.0.0.1/24/1",
            "10.0.0.1/+1",
            "fd00::1/129",
            "10.0.0.1/0024",
        ] {
            assert!(
                matches!(parse(text), Err(AddressError::Prefix { .. })),
                "{text}: {:?}",
                parse(text)
            );
        }
        for text in ["", "host-gateway", "0.0.0.0.0", "10.0.0.1:80", "[10.0.0.1"] {
            assert!(
                matches!(parse(text), Err(AddressError::Syntax { .. })),
                "{text}"
            );
        }
        let e = parse("10.0.0.1/garbage").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("10.0.0.1/garbage")),
            "{e:?}"
        );
        assert_eq!(
            parse_for("::ffff:0.0.0.0", AddressRole::OperatorBind),
            Ok(ip("0.0.0.0"))
        );
    }
}
