//! Reading the process environment without trusting it to be UTF-8.
//!
//! Unix environments are bytes. A value we read that is not UTF-8 cannot be an endpoint, a
//! path we can show or an address, so it is invalid input that names the variable; a variable
//! we never read is none of our business, whatever its bytes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::DiscoveryEnv;

/// The variables discovery and the CLI read, besides every [`READ_PREFIX`] one.
pub const READ_VARS: &[&str] = &[
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "PODMAN_CONNECTIONS_CONF",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "HOME",
    "TMPDIR",
    "RUST_LOG",
];

/// Every variable with this prefix is ours (`OPENSHELL_HOST_GATEWAY_IP`, ...).
pub const READ_PREFIX: &str = "OPENSHELL_";

/// Whether we read `name`.
pub fn reads_env_var(name: &str) -> bool {
    name.starts_with(READ_PREFIX) || READ_VARS.contains(&name)
}

/// Variables we read whose values are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {} is not valid UTF-8; fix or unset it", .names.join(", "))]
pub struct EnvError {
    /// Their names, sorted. Values are not kept: they may hold credentials.
    pub names: Vec<String>,
}

impl DiscoveryEnv {
    /// The process's own environment; fails naming every variable we read that is not UTF-8.
    pub fn from_process() -> Result<DiscoveryEnv, EnvError> {
        DiscoveryEnv::from_vars_os(std::env::vars_os())
    }

    /// An environment from raw pairs (what [`std::env::vars_os`] yields). UTF-8 variables are
    /// kept; a variable we read (see [`reads_env_var`]) that is not UTF-8 is an error; any other is
    /// dropped.
    pub fn from_vars_os(
        pairs: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<DiscoveryEnv, EnvError> {
        let mut vars = BTreeMap::new();
        let mut names = Vec::new();
        for (k, v) in pairs {
            // A name that is not UTF-8 is none of ours: every name we read is ASCII.
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => {
                    vars.insert(k, v);
                }
                Err(_) if reads_env_var(&k) => names.push(k),
                Err(_) => {}
            }
        }
        if !names.is_empty() {
            names.sort();
            return Err(EnvError { names });
        }
        let home = vars.get("HOME").map(PathBuf::from);
        Ok(DiscoveryEnv { vars, home })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn os(b: &[u8]) -> OsString {
        OsStr::from_bytes(b).to_os_string()
    }

    #[test]
    fn non_utf8_is_ignored_unless_we_read_it() {
        let env = DiscoveryEnv::from_vars_os([
            (os(b"HOME"), os(b"/home/u")),
            (os(b"FOO"), os(b"\xff")),
            (os(b"\xfe"), os(b"x")),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.var("HOME"), Some("/home/u"));
        assert_eq!(env.home, Some(PathBuf::from("/home/u")));
        assert_eq!(env.var("FOO"), None);

        let err = DiscoveryEnv::from_vars_os([
            (os(b"OPENSHELL_BIND_ADDRESS"), os(b"1.2.3.4\xff")),
            (os(b"DOCKER_HOST"), os(b"tcp://u:secret\xff@h")),
            (os(b"FOO"), os(b"\xff")),
        ]);
        let err = err.err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.names, ["DOCKER_HOST", "OPENSHELL_BIND_ADDRESS"]);
        let shown = err.to_string();
        assert!(
            shown.contains("DOCKER_HOST, OPENSHELL_BIND_ADDRESS"),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
}
