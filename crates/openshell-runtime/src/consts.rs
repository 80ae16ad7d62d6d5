//! Names, labels and well-known addresses, in one place so that policy code and docs agree.

use std::net::{IpAddr, Ipv4Addr};

/// The name every sandbox uses to reach the gateway.
pub const OPENSHELL_HOST: &str = "host.openshell.internal";
/// Docker's own alias for the host, added beside ours on Docker engines.
pub const DOCKER_HOST_ALIAS: &str = "host.docker.internal";
/// Podman's own alias for the host, added beside ours on Podman engines.
pub const PODMAN_HOST_ALIAS: &str = "host.containers.internal";
/// The special `--add-host` value that the engine replaces with its host-gateway address.
pub const HOST_GATEWAY: &str = "host-gateway";

/// Label prefix of every object (container, network) that openshell creates.
pub const LABEL_PREFIX: &str = "io.openshell.";
/// Label that marks a network or container as created by openshell.
pub const LABEL_MANAGED: &str = "io.openshell.managed";
/// Label that carries a sandbox's id on its container.
pub const LABEL_SANDBOX: &str = "io.openshell.sandbox";
/// Label that marks a container as a relay (see docs/relay.md).
pub const LABEL_RELAY: &str = "io.openshell.relay";
/// Label that carries the network a relay serves.
pub const LABEL_RELAY_NETWORK: &str = "io.openshell.relay.network";
/// Label that carries the gateway process that owns a relay: `<host name>/<pid>`.
pub const LABEL_RELAY_OWNER: &str = "io.openshell.relay.owner";
/// Label: when a relay was created, in seconds since the Unix epoch; a relay of another host's
/// gateway that never started long after it is left behind.
pub const LABEL_RELAY_CREATED: &str = "io.openshell.relay.created";
/// Label that marks a container as a reachability probe (value `true`).
pub const LABEL_PROBE: &str = "io.openshell.probe";
/// Label that names a probe's owner process: `<boot id>/<pid namespace>/<pid>`.
pub const LABEL_OWNER: &str = "io.openshell.owner";
/// Label that says when a probe is stale at the latest, in seconds since the Unix epoch.
pub const LABEL_EXPIRES: &str = "io.openshell.expires";
/// Label that marks a scratch network (value: the name of the network whose subnet it picks);
/// it also carries [`LABEL_OWNER`] and [`LABEL_EXPIRES`], so that one an interrupted run left
/// is removed by the next run that creates that network.
pub const LABEL_SCRATCH: &str = "io.openshell.scratch";
/// Label: a random value one create attempt puts on its container, so that after a create
/// that failed (a timeout, a lost reply) only the container this attempt made is removed, never
/// another that holds the name.
pub const LABEL_CREATE: &str = "io.openshell.create";
/// Default name of the bridge network sandboxes are attached to.
pub const DEFAULT_SANDBOX_NETWORK: &str = "openshell";

/// Docker Desktop's host-gateway address (`host.docker.internal`) as observed on current
/// releases (Docker documents the name, not the address); forwarded to the host's loopback.
/// Source: docs/runtimes.md.
pub const DOCKER_DESKTOP_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 65, 254));
/// Docker Desktop's older host address (vpnkit's `--host-ip`).
pub const DOCKER_DESKTOP_LEGACY_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 65, 2));
/// Lima's user-mode network host address (`host.lima.internal`), also used by Colima and
/// Rancher Desktop; it lands on the host's loopback.
pub const LIMA_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 5, 2));
/// OrbStack's `host.docker.internal` / host-gateway address as observed (not documented by
/// OrbStack), which lands on the Mac's loopback.
pub const ORBSTACK_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(0, 250, 250, 254));
/// gvproxy's host address in Podman machines (`host.containers.internal`); gvproxy NATs it to
/// the host's 127.0.0.1.
pub const GVPROXY_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 127, 254));
/// slirp4netns' host address, which reaches the host's loopback only with
/// `allow_host_loopback=true`.
pub const SLIRP4NETNS_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
/// VPNKit's host-loopback address in a RootlessKit namespace (`--net=vpnkit` without
/// `--disable-host-loopback`). Source: rootlesskit docs/network.md.
pub const VPNKIT_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 65, 2));
/// gvisor-tap-vsock's host-loopback address in a RootlessKit namespace (`--net=gvisor-tap-vsock`
/// without `--disable-host-loopback`; also its gateway). Source: rootlesskit docs/network.md.
pub const GVISOR_TAP_VSOCK_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1));
/// The address Podman (5.3 and later) gives pasta as `--map-guest-addr`, which pasta maps to the
/// host's own address.
pub const PASTA_MAPPED_HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 1, 2));
/// IPv4 loopback: where the gateway binds when the runtime forwards to the host's loopback.
pub const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
