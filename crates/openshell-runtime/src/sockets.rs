//! Where runtimes put their engine's API socket: pure data that both drivers' discovery reads.
//!
//! Each runtime lists its own locations next to its detector (`SOCKETS` in its file under
//! `runtime/`); `RuntimeId::sockets` and `well_known_sockets` (in `runtime`, above this
//! module) collect them. This module only describes
//! a location: expanding a root (home directory, `XDG_RUNTIME_DIR`, `TMPDIR`), listing the
//! directory of a `*` segment and connecting are the drivers' I/O.

use crate::facts::HostOs;

/// Which API the engine serves on a socket, which decides which drivers can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketApi {
    /// Docker Engine's API only: the Docker driver.
    Docker,
    /// Podman's service, which serves libpod and the Docker-compatible API on the same socket:
    /// either driver.
    Podman,
}

/// What a [`SocketLocation::path`] is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketRoot {
    /// Nothing: the path is absolute (`/var/run/docker.sock`).
    Absolute,
    /// The user's home directory; the location does not exist when it is unknown.
    Home,
    /// `$XDG_RUNTIME_DIR` (`/run/user/<uid>` under systemd); absent when the variable is unset.
    XdgRuntimeDir,
    /// `$TMPDIR` (a per-user `/var/folders/…/T/` on macOS); absent when the variable is unset.
    TmpDir,
    /// A Windows named pipe; the path is the pipe's (`//./pipe/<name>`).
    NamedPipe,
}

/// An operating-system family, for locations that exist on one only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OsFamily {
    /// Linux.
    Linux,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
}

impl OsFamily {
    /// The family of a host OS; `None` for [`HostOs::Other`].
    pub fn of(os: &HostOs) -> Option<OsFamily> {
        match os {
            HostOs::Linux => Some(OsFamily::Linux),
            HostOs::Macos => Some(OsFamily::Macos),
            HostOs::Windows => Some(OsFamily::Windows),
            HostOs::Other(_) => None,
        }
    }
}

/// One place where a runtime's engine listens, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketLocation {
    /// What [`path`](Self::path) is relative to.
    pub root: SocketRoot,
    /// The path under [`root`](Self::root), `/`-separated: absolute for
    /// [`SocketRoot::Absolute`], the pipe path for [`SocketRoot::NamedPipe`]
    /// (`//./pipe/podman-machine-default`), else relative. At most one segment contains `*`; it
    /// stands for each entry of that directory whose name has the literal text around the `*`
    /// (`.colima/*/docker.sock`, `podman/*-api.sock`): see [`instances`](Self::instances).
    pub path: &'static str,
    /// For a `*` segment: the instance listed first, even when its directory entry is absent
    /// (Colima's `default` profile), so that the runtime's default is always a candidate.
    pub default_instance: Option<&'static str>,
    /// Which API the engine serves here.
    pub api: SocketApi,
    /// Discovery order across every runtime's locations, lower first; unique per location.
    pub rank: u16,
    /// What to call the location in discovery reports, e.g. `Docker Desktop (Linux)`.
    pub label: &'static str,
    /// The only OS family on which the location exists; `None` when it may exist on any.
    pub only_on: Option<OsFamily>,
}

impl SocketLocation {
    /// Whether the location can exist on `os` ([`only_on`](Self::only_on) is unset or names
    /// its family).
    pub fn applies_on(&self, os: &HostOs) -> bool {
        self.only_on.is_none_or(|f| OsFamily::of(os) == Some(f))
    }

    /// The `*` segment of [`path`](Self::path), split for listing one directory; `None` when
    /// the path names one socket.
    pub fn instances(&self) -> Option<InstancePattern> {
        let star = self.path.find('*')?;
        let dir_end = self.path[..star].rfind('/').map_or(0, |i| i + 1);
        let seg_end = self.path[star..]
            .find('/')
            .map_or(self.path.len(), |i| star + i);
        Some(InstancePattern {
            dir: self.path[..dir_end].trim_end_matches('/'),
            prefix: &self.path[dir_end..star],
            suffix: &self.path[star + 1..seg_end],
            rest: self.path[seg_end..].trim_start_matches('/'),
        })
    }
}

/// A location's `*` segment: which entries of one directory are instances, and where each
/// instance's socket is.
///
/// For `.colima/*/docker.sock` the directory is `.colima`, every entry is an instance and its
/// socket is `.colima/<entry>/docker.sock`; for `podman/*-api.sock` the directory is `podman`
/// and an entry named `<machine>-api.sock` is itself the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstancePattern {
    /// The directory to list, relative to the location's root (empty for the root itself).
    pub dir: &'static str,
    /// Literal text an entry's name starts with.
    pub prefix: &'static str,
    /// Literal text an entry's name ends with.
    pub suffix: &'static str,
    /// The path below a matching entry (empty when the entry is the socket).
    pub rest: &'static str,
}

impl InstancePattern {
    /// The instance name an entry stands for (the text `*` matched, never empty), or `None`
    /// when the entry does not match.
    pub fn instance<'n>(&self, entry: &'n str) -> Option<&'n str> {
        let name = entry.strip_prefix(self.prefix)?.strip_suffix(self.suffix)?;
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }

    /// The entry name of an instance: the inverse of [`instance`](Self::instance).
    pub fn entry(&self, instance: &str) -> String {
        format!("{}{instance}{}", self.prefix, self.suffix)
    }

    /// The socket's path for an instance, relative to the location's root.
    pub fn path(&self, instance: &str) -> String {
        [self.dir, &self.entry(instance), self.rest]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &'static str) -> SocketLocation {
        SocketLocation {
            root: SocketRoot::Home,
            path,
            default_instance: None,
            api: SocketApi::Docker,
            rank: 0,
            label: "test",
            only_on: None,
        }
    }

    #[test]
    fn a_star_segment_splits_into_directory_entry_and_rest() {
        let colima = at(".colima/*/docker.sock").instances();
        assert_eq!(
            colima,
            Some(InstancePattern {
                dir: ".colima",
                prefix: "",
                suffix: "",
                rest: "docker.sock"
            })
        );
        let machine = at("podman/*-api.sock").instances();
        assert_eq!(
            machine,
            Some(InstancePattern {
                dir: "podman",
                prefix: "",
                suffix: "-api.sock",
                rest: ""
            })
        );
        let m = machine.unwrap_or_else(|| panic!("no pattern"));
        assert_eq!(
            m.instance("podman-machine-default-api.sock"),
            Some("podman-machine-default")
        );
        assert_eq!(m.instance("podman-machine-default-gvproxy.sock"), None);
        assert_eq!(m.instance("-api.sock"), None);
        assert_eq!(m.path("dev"), "podman/dev-api.sock");
        let c = colima.unwrap_or_else(|| panic!("no pattern"));
        assert_eq!(c.path("default"), ".colima/default/docker.sock");
        assert_eq!(at(".rd/docker.sock").instances(), None);
        let top = at("*.sock")
            .instances()
            .unwrap_or_else(|| panic!("no pattern"));
        assert_eq!(top.path("x"), "x.sock");
    }

    #[test]
    fn only_on_restricts_a_location_to_one_family() {
        let pipe = SocketLocation {
            only_on: Some(OsFamily::Windows),
            ..at("//./pipe/x")
        };
        assert!(pipe.applies_on(&HostOs::Windows));
        assert!(!pipe.applies_on(&HostOs::Linux));
        assert!(!pipe.applies_on(&HostOs::Other("plan9".into())));
        assert!(at("x.sock").applies_on(&HostOs::Other("plan9".into())));
    }
}
