//! The gateway host's own facts: its OS and the source address of its default route.
//!
//! This is the one place that asks which OS we run on; the policy only ever sees the answer.

use std::net::Ipv4Addr;

use openshell_runtime::HostOs;

/// Facts about the machine the gateway runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Its OS.
    pub os: HostOs,
    /// Primary IPv4: the address of the interface that holds the default route.
    pub ipv4: Option<Ipv4Addr>,
}

/// Reads the host's facts. Sends no traffic: the default route comes from the kernel's routing
/// table and the address from the interface list.
pub fn host_facts() -> HostFacts {
    let os = current_os();
    let ipv4 = default_route_interface().and_then(|ifname| interface_ipv4(&ifname));
    HostFacts { os, ipv4 }
}

/// The OS this process runs on.
pub fn current_os() -> HostOs {
    if cfg!(target_os = "linux") {
        HostOs::Linux
    } else if cfg!(target_os = "macos") {
        HostOs::Macos
    } else if cfg!(target_os = "windows") {
        HostOs::Windows
    } else {
        HostOs::Other(std::env::consts::OS.to_string())
    }
}

/// The interface of the IPv4 default route, from `/proc/net/route` (Linux only).
fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_default_route(&table)
}

/// Finds the default route (destination and mask 0) with the lowest metric.
fn parse_default_route(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let (iface, dest, flags, metric, mask) =
                (f.first()?, f.get(1)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let up = u32::from_str_radix(flags, 16).ok()? & 0x1 == 0x1;
            (up && *dest == "00000000" && *mask == "00000000")
                .then(|| Some((metric.parse::<u32>().ok()?, iface.to_string())))
                .flatten()
        })
        .min()
        .map(|(_, iface)| iface)
}

fn interface_ipv4(ifname: &str) -> Option<Ipv4Addr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .filter(|i| i.name == ifname)
        .find_map(|i| match i.ip() {
            std::net::IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::parse_default_route;

    #[test]
    fn picks_the_default_route_with_lowest_metric() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            wlan0\t00000000\t0101A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(parse_default_route(table).as_deref(), Some("wlan0"));
        assert_eq!(parse_default_route("Iface\tDestination\n"), None);
    }
}
