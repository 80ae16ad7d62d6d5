//! Where Podman is, in Podman's own order.
//!
//! Explicit endpoint, `CONTAINER_HOST`, `CONTAINER_CONNECTION` (a named connection), the default
//! connection in `podman-connections.json` (`PODMAN_CONNECTIONS_CONF`), containers.conf's
//! `[engine] active_service` / `service_destinations`, then the well-known sockets of the Podman
//! runtimes (rootless, rootful, machines: data in their files in `openshell-runtime`). A
//! user-named endpoint (the flag, a variable, a connection, a service destination) is the only
//! candidate, as in Podman: when it does not answer, nothing else is tried.

use std::path::PathBuf;

use openshell_sandbox::support::discover::{parse_endpoint as parse, well_known};
use openshell_sandbox::support::ssh::SshSettings;
use openshell_sandbox::support::transport::Target;
use openshell_sandbox::{Candidates, DiscoveryEnv, DiscoveryError};

/// A connection or service destination: its name, URI, identity file, and whether it is the
/// default (or active) one.
type Conn = (String, String, bool, Option<String>);

/// The endpoint `uri` (from `origin`) as a named candidate. An `ssh://` one is reached with its
/// user, the connection's identity file (`ssh -i`) and the ssh configuration `env` names.
fn named(
    uri: &str,
    origin: &str,
    source: String,
    identity: Option<&str>,
    env: &DiscoveryEnv,
) -> Result<Candidates, DiscoveryError> {
    let endpoint = parse(uri, origin)?;
    let mut target = Target::new(endpoint);
    if let openshell_runtime::facts::Endpoint::Ssh { .. } = target.endpoint() {
        let mut ssh = SshSettings::for_endpoint(uri, env);
        ssh.identity = identity.filter(|i| !i.is_empty()).map(PathBuf::from);
        target = target.with_ssh(ssh);
    }
    Ok(Candidates::named(target, source))
}

fn config_home(env: &DiscoveryEnv) -> Option<PathBuf> {
    env.var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".config")))
}

/// `(name, uri, is_default, identity)` from `podman-connections.json`.
fn connections_file(env: &DiscoveryEnv) -> Vec<Conn> {
    let path = env
        .var("PODMAN_CONNECTIONS_CONF")
        .map(PathBuf::from)
        .or_else(|| config_home(env).map(|c| c.join("containers/podman-connections.json")));
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let default = doc
        .pointer("/Connection/Default")
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .to_string();
    let Some(conns) = doc
        .pointer("/Connection/Connections")
        .and_then(|c| c.as_object())
    else {
        return Vec::new();
    };
    let mut out: Vec<Conn> = conns
        .iter()
        .filter_map(|(name, c)| {
            Some((
                name.clone(),
                c.get("URI")?.as_str()?.to_string(),
                *name == default,
                c.get("Identity")
                    .and_then(|i| i.as_str())
                    .map(str::to_string),
            ))
        })
        .collect();
    out.sort_by_key(|(n, _, d, _)| (!d, n.clone()));
    out
}

/// `(name, uri, is_active, identity)` from containers.conf files (later files override earlier
/// ones).
fn service_destinations(env: &DiscoveryEnv) -> Vec<Conn> {
    let mut files: Vec<PathBuf> = vec![
        "/usr/share/containers/containers.conf".into(),
        "/etc/containers/containers.conf".into(),
    ];
    if let Some(c) = config_home(env) {
        files.push(c.join("containers/containers.conf"));
    }
    if let Some(c) = env.var("CONTAINERS_CONF") {
        files = vec![PathBuf::from(c)];
    }
    let mut active = String::new();
    let mut dests: Vec<(String, String, Option<String>)> = Vec::new();
    for f in files {
        let Some(doc) = std::fs::read_to_string(&f)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
        else {
            continue;
        };
        let Some(engine) = doc.get("engine").and_then(|e| e.as_table()) else {
            continue;
        };
        if let Some(a) = engine.get("active_service").and_then(|a| a.as_str()) {
            active = a.to_string();
        }
        if let Some(sd) = engine
            .get("service_destinations")
            .and_then(|s| s.as_table())
        {
            for (name, d) in sd {
                if let Some(uri) = d.get("uri").and_then(|u| u.as_str()) {
                    let identity = d
                        .get("identity")
                        .and_then(|i| i.as_str())
                        .map(str::to_string);
                    dests.retain(|(n, _, _)| n != name);
                    dests.push((name.clone(), uri.to_string(), identity));
                }
            }
        }
    }
    let mut out: Vec<Conn> = dests
        .into_iter()
        .map(|(n, u, i)| {
            let a = n == active;
            (n, u, a, i)
        })
        .collect();
    out.sort_by_key(|(n, _, a, _)| (!a, n.clone()));
    out
}

/// The endpoint named for this run: the flag, `CONTAINER_HOST` or `CONTAINER_CONNECTION`.
/// `openshell-engine` honours these before any well-known socket even when no driver was
/// chosen, since the user set them for this very run; the configuration files' defaults come
/// after the Docker order, as they always have.
pub fn named_for_this_run(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
) -> Result<Option<Candidates>, DiscoveryError> {
    if let Some(e) = explicit {
        return named(e, "--endpoint", "--endpoint".into(), None, env).map(Some);
    }
    if let Some(h) = env.var("CONTAINER_HOST") {
        return named(h, "CONTAINER_HOST", "CONTAINER_HOST".into(), None, env).map(Some);
    }
    if let Some(name) = env.var("CONTAINER_CONNECTION") {
        let dests = service_destinations(env);
        let conns = connections_file(env);
        let (uri, identity) = conns
            .iter()
            .chain(dests.iter())
            .find(|(n, _, _, _)| n == name)
            .map(|(_, u, _, i)| (u.clone(), i.clone()))
            .ok_or_else(|| DiscoveryError::UnknownName {
                origin: "CONTAINER_CONNECTION",
                name: openshell_runtime::display_value(name),
                searched: "podman-connections.json or containers.conf",
            })?;
        return named(
            &uri,
            "CONTAINER_CONNECTION",
            format!("connection {name} (CONTAINER_CONNECTION)"),
            identity.as_deref(),
            env,
        )
        .map(Some);
    }
    Ok(None)
}

/// The candidates in order, without touching any of them.
pub fn candidates(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
) -> Result<Candidates, DiscoveryError> {
    if let Some(named) = named_for_this_run(explicit, env)? {
        return Ok(named);
    }
    let conns = connections_file(env);
    let dests = service_destinations(env);
    if let Some((name, uri, _, identity)) = conns.iter().find(|(_, _, d, _)| *d) {
        return named(
            uri,
            "podman-connections.json",
            format!("connection {name} (podman-connections.json default)"),
            identity.as_deref(),
            env,
        );
    }
    if let Some((name, uri, _, identity)) = dests.iter().find(|(_, _, a, _)| *a).or(dests.first()) {
        return named(
            uri,
            "containers.conf",
            format!("service destination {name} (containers.conf)"),
            identity.as_deref(),
            env,
        );
    }
    Ok(well_known(env, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env(vars: &[(&str, &str)], home: &Path) -> DiscoveryEnv {
        DiscoveryEnv::from_vars(vars.iter().copied(), Some(home.to_path_buf()))
    }

    fn first(c: &Candidates) -> String {
        c.list()
            .first()
            .map(|(e, s)| format!("{s}={e}"))
            .unwrap_or_default()
    }

    #[test]
    fn follows_podmans_order() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        let c = |vars: &[(&str, &str)]| {
            candidates(None, &env(vars, h)).unwrap_or_else(|e| panic!("{e}"))
        };
        // Nothing configured: rootless socket, then rootful, then machines.
        let plain = c(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        assert_eq!(
            first(&plain),
            "well-known: Podman (rootless)=unix:///run/user/1000/podman/podman.sock"
        );
        assert!(!plain.is_named());
        assert!(plain
            .list()
            .iter()
            .any(|(_, s)| s == "well-known: Podman (rootful)"));

        std::fs::create_dir_all(h.join(".config/containers")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            h.join(".config/containers/containers.conf"),
            "[engine]\nactive_service = \"box\"\n[engine.service_destinations.box]\nuri = \"ssh://me@10.0.0.9/run/podman/podman.sock\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first(&c(&[])),
            "service destination box (containers.conf)=ssh://10.0.0.9/run/podman/podman.sock"
        );

        std::fs::write(
            h.join(".config/containers/podman-connections.json"),
            r#"{"Connection":{"Default":"podman-machine-default","Connections":{"podman-machine-default":{"URI":"ssh://core@127.0.0.1:52641/run/user/501/podman/podman.sock","Identity":"/Users/me/.ssh/machine","IsMachine":true},"other":{"URI":"unix:///tmp/other.sock"}}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let machine = c(&[]);
        assert_eq!(first(&machine), "connection podman-machine-default (podman-connections.json default)=ssh://127.0.0.1:52641/run/user/501/podman/podman.sock");
        // Its ssh client gets the connection's user and identity file.
        let ssh = machine.list()[0].0.ssh();
        assert_eq!(ssh.user.as_deref(), Some("core"));
        assert_eq!(
            ssh.identity.as_deref(),
            Some(Path::new("/Users/me/.ssh/machine"))
        );
        assert_eq!(
            first(&c(&[("CONTAINER_CONNECTION", "other")])),
            "connection other (CONTAINER_CONNECTION)=unix:///tmp/other.sock"
        );
        assert!(candidates(None, &env(&[("CONTAINER_CONNECTION", "nope")], h)).is_err());
        assert_eq!(
            first(&c(&[
                ("CONTAINER_HOST", "unix:///x.sock"),
                ("CONTAINER_CONNECTION", "other")
            ])),
            "CONTAINER_HOST=unix:///x.sock"
        );
        let explicit = candidates(
            Some("tcp://localhost:8080"),
            &env(&[("CONTAINER_HOST", "unix:///x.sock")], h),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first(&explicit), "--endpoint=tcp://localhost:8080");
    }
}
