//! Podman machine: Podman in a VM, on macOS, Windows or Linux.
//!
//! Identified by a Podman signal together with a macOS or Windows gateway host (Podman has no
//! native engine there), or a machine socket path. This is the runtime of the original bug: the
//! VM's bridge gateway exists only inside the VM. With gvproxy (macOS applehv/libkrun, Windows
//! Hyper-V, Linux QEMU, WSL with user-mode networking) the host is 192.168.127.254, which gvproxy
//! NATs to the host's 127.0.0.1, so the gateway stays on loopback. From Podman 5.6 (inside the
//! VM) `host-gateway` resolves to that address too; older releases fail with "host containers
//! internal IP address is empty", so they get the literal address. On WSL without user-mode
//! networking the host is the Windows adapter's address, not its loopback: fail closed.
//! Sources: gvisor-tap-vsock `cmd/gvproxy/config.go`, containers/common#2464; docs/runtimes.md.

use std::net::IpAddr;

use crate::consts::GVPROXY_HOST_IP;
use crate::error::RouteError;
use crate::evidence::Evidence;
use crate::facts::{EngineVersion, Facts, HostOs};
use crate::route::{EngineKind, HostTarget, RoutePlan};
use crate::signals::{endpoint_path_contains, engine_kind};
use crate::sockets::{OsFamily, SocketApi, SocketLocation, SocketRoot};

use super::{matched, ContainerRuntime, Detection, HostNetwork, RuntimeId};

/// Podman resolves `host-gateway` inside a machine from 5.6.
const MACHINE_HOST_GATEWAY_SINCE: EngineVersion = EngineVersion::new(5, 6, 0);

/// Podman machine (`podman-machine`): Podman in a VM behind gvproxy. Routes to gvproxy's host
/// address (or `host-gateway` from Podman 5.6), which lands on the host's loopback; refused on a
/// WSL machine, whose host is not behind its loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanMachine {
    /// Podman version inside the VM.
    pub version: Option<EngineVersion>,
    /// Whether the VM is a WSL distribution: `Some(true)` when its kernel says so, `None` on a
    /// Windows host whose machine kernel was not reported (WSL is the Windows default).
    pub wsl: Option<bool>,
}

const ALIASES: [IpAddr; 1] = [GVPROXY_HOST_IP];

/// Where `podman machine start` forwards the machine's API on the host. Podman 4 on macOS and
/// Linux: `~/.local/share/containers/podman/machine/<machine>/podman.sock` (shown by
/// `podman machine inspect` since <https://github.com/containers/podman/pull/14448>; the qemu
/// provider's directory is `qemu`). Podman 5 on macOS: `$TMPDIR/podman/<machine>-api.sock`.
/// Podman 5 on Linux: `$XDG_RUNTIME_DIR/podman/<machine>-api.sock` (the API socket moved into
/// the runtime directory, <https://github.com/containers/podman/pull/22028>; the macOS entry is
/// the same directory, whose runtime directory is `$TMPDIR`). Windows: the named pipe
/// `//./pipe/podman-machine-default` of the default machine
/// (<https://github.com/containers/podman/issues/14231>).
pub(crate) const SOCKETS: &[SocketLocation] = &[
    SocketLocation {
        root: SocketRoot::Home,
        path: ".local/share/containers/podman/machine/*/podman.sock",
        default_instance: None,
        api: SocketApi::Podman,
        rank: 220,
        label: "Podman machine",
        only_on: None,
    },
    SocketLocation {
        root: SocketRoot::TmpDir,
        path: "podman/*-api.sock",
        default_instance: None,
        api: SocketApi::Podman,
        rank: 221,
        label: "Podman machine (macOS)",
        only_on: None,
    },
    SocketLocation {
        root: SocketRoot::XdgRuntimeDir,
        path: "podman/*-api.sock",
        default_instance: None,
        api: SocketApi::Podman,
        rank: 223,
        label: "Podman machine (Podman 5, Linux)",
        only_on: Some(OsFamily::Linux),
    },
    SocketLocation {
        root: SocketRoot::NamedPipe,
        path: "//./pipe/podman-machine-default",
        default_instance: None,
        api: SocketApi::Podman,
        rank: 222,
        label: "Podman machine (Windows)",
        only_on: Some(OsFamily::Windows),
    },
];

impl PodmanMachine {
    /// Matches Podman on a macOS or Windows host, or behind a machine socket path.
    pub fn detect(facts: &Facts) -> Detection {
        let (kind, mut ev) = engine_kind(facts);
        if kind != EngineKind::Podman {
            return Detection::NotMine("no Podman signal".into());
        }
        let mut machine = Vec::new();
        if let Some(os) = facts
            .host_os
            .as_ref()
            .filter(|os| matches!(os, HostOs::Macos | HostOs::Windows))
        {
            machine.push(Evidence::new(
                "host_os",
                os.as_str(),
                "Podman runs on macOS and Windows only inside a machine VM",
            ));
        }
        machine.extend(endpoint_path_contains(
            facts,
            "podman-machine",
            "a Podman machine socket",
        ));
        machine.extend(endpoint_path_contains(
            facts,
            "/podman/machine/",
            "a Podman machine socket",
        ));
        if machine.is_empty() {
            return Detection::NotMine("no macOS/Windows host or machine socket".into());
        }
        ev.extend(machine);
        let kernel = facts
            .libpod
            .as_ref()
            .and_then(|l| l.kernel.as_deref())
            .or(facts.info.kernel_version.as_deref());
        let wsl = match kernel {
            Some(k) => {
                let wsl = k.contains("WSL") || k.contains("microsoft");
                if wsl {
                    ev.push(Evidence::new(
                        "info.KernelVersion",
                        k,
                        "the machine is a WSL distribution",
                    ));
                }
                Some(wsl)
            }
            None if facts.host_os == Some(HostOs::Windows) => {
                let provider = windows_provider(facts);
                if let Some((_, e)) = &provider {
                    ev.push(e.clone());
                }
                provider.map(|(wsl, _)| wsl)
            }
            None => Some(false),
        };
        matched(
            PodmanMachine {
                version: facts.engine_version(),
                wsl,
            },
            ev,
        )
    }
}

/// Which Windows provider runs the machine, when its kernel is not reported: `Some(true)` for WSL.
/// The machine's files sit under `…\podman\machine\<provider>\`, and the endpoint of early
/// Hyper-V builds pointed there. Hyper-V machines boot Fedora CoreOS (libpod reports the
/// distribution variant `coreos`), while WSL machines import a Fedora container image (variant
/// `container`).
fn windows_provider(facts: &Facts) -> Option<(bool, Evidence)> {
    if let Some(e) = endpoint_path_contains(
        facts,
        "/machine/hyperv/",
        "a Hyper-V machine's socket (gvproxy serves its host as 192.168.127.254)",
    ) {
        return Some((false, e));
    }
    if let Some(e) = endpoint_path_contains(facts, "/machine/wsl/", "a WSL machine's socket") {
        return Some((true, e));
    }
    let variant = facts
        .libpod
        .as_ref()
        .and_then(|l| l.distribution_variant.as_deref())?;
    match variant {
        "coreos" => Some((
            false,
            Evidence::new(
                "libpod_info.host.distribution.variant",
                variant,
                "a Fedora CoreOS machine: Hyper-V on Windows, not WSL",
            ),
        )),
        "container" => Some((
            true,
            Evidence::new(
                "libpod_info.host.distribution.variant",
                variant,
                "a machine imported from a Fedora container image: WSL on Windows",
            ),
        )),
        _ => None,
    }
}

impl ContainerRuntime for PodmanMachine {
    fn id(&self) -> &str {
        RuntimeId::PodmanMachine.as_str()
    }

    fn engine(&self) -> EngineKind {
        EngineKind::Podman
    }

    fn plan(&self) -> Result<RoutePlan, RouteError> {
        let fix = "run `podman machine set --user-mode-networking` and set host_gateway_ip = 192.168.127.254 (the gateway then binds 127.0.0.1)";
        match self.wsl {
            Some(true) => {
                return Err(RouteError::NoSafeRoute {
                    runtime: self.id().into(),
                    reason: "a WSL machine reaches Windows through the WSL adapter's address, not its loopback, and whether user-mode networking (gvproxy) is on is not reported".into(),
                    fix: fix.into(),
                })
            }
            None => {
                return Err(RouteError::NoSafeRoute {
                    runtime: self.id().into(),
                    reason: "neither the machine's kernel nor its provider (socket path, distribution variant) is reported, so WSL (the Windows default, whose containers do not reach the host's loopback) cannot be ruled out".into(),
                    fix: format!("gather the engine's /info or libpod /info (its kernel tells WSL from Hyper-V), or {fix}"),
                })
            }
            Some(false) => {}
        }
        if self
            .version
            .is_some_and(|v| v >= MACHINE_HOST_GATEWAY_SINCE)
        {
            return Ok(RoutePlan::to_loopback(
                HostTarget::HostGateway,
                "Podman 5.6+ in the machine resolves host-gateway to gvproxy's 192.168.127.254, which gvproxy NATs to the host's loopback",
            ));
        }
        Ok(RoutePlan::to_loopback(
            HostTarget::Ip(GVPROXY_HOST_IP),
            "gvproxy NATs 192.168.127.254 to the host's loopback; this Podman cannot resolve host-gateway in a machine",
        ))
    }

    fn loopback_aliases(&self) -> &[IpAddr] {
        &ALIASES
    }

    fn alternatives(&self) -> Vec<RoutePlan> {
        // Whichever form plan() chose, the other: the literal gvproxy address works on every
        // version; host-gateway only from 5.6.
        match self.plan() {
            Ok(p) if p.target == HostTarget::HostGateway => vec![RoutePlan::to_loopback(
                HostTarget::Ip(GVPROXY_HOST_IP),
                "gvproxy NATs 192.168.127.254 to the host's loopback",
            )],
            _ => Vec::new(),
        }
    }

    /// A host-network container joins the machine VM's namespace; gvproxy NATs 192.168.127.254
    /// to the host's 127.0.0.1 for everything in the VM, as for bridge containers. WSL machines
    /// are refused for the reason their bridge route is.
    fn host_network(&self) -> HostNetwork {
        match self.plan() {
            Err(e) => HostNetwork::refused("the machine VM", e),
            Ok(_) => HostNetwork::vm(
                GVPROXY_HOST_IP,
                "host networking joins the machine VM's namespace, whose 127.0.0.1 is the VM's; gvproxy NATs 192.168.127.254 to the host's loopback",
            ),
        }
    }
}
