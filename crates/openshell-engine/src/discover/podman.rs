//! Where Podman is, in Podman's own order.
//!
//! Explicit endpoint, `CONTAINER_HOST`, `CONTAINER_CONNECTION` (a named connection), the default
//! connection in `podman-connections.json` (`PODMAN_CONNECTIONS_CONF`), containers.conf's
//! `[engine] active_service` / `service_destinations`, then the well-known sockets of the Podman
//! runtimes (rootless, rootful, machines: data in their files in `openshell-runtime`). A
//! user-named endpoint (the flag, a variable, a connection, a service destination) is the only
//! candidate, as in Podman: when it does not answer, nothing else is tried.

use std::path::PathBuf;

use super::MAX_CONFIG;
use super::{
    flagged_tls_candidate, parse_endpoint as parse, tls_candidate, well_known, Candidates,
    DiscoveryEnv, DiscoveryError,
};
use openshell_runtime::facts::Endpoint;
use openshell_transport::file::read_small_text;
use openshell_transport::ssh::{SshSettings, SSH_CONFIG_ENV};
use openshell_transport::tls::{TlsFiles, TlsMaterial};
use openshell_transport::transport::Target;

/// A connection (`podman-connections.json`) or service destination (containers.conf): its
/// name, URI, whether it is the default (or active) one, its ssh identity file, and its TLS
/// files (Podman 5.7+: a `tcp://` connection with any of them speaks TLS).
#[derive(Debug, Clone, Default)]
struct Conn {
    name: String,
    uri: String,
    default: bool,
    identity: Option<String>,
    tls: TlsFiles,
}

/// The endpoint `uri` (from `origin`) as a named candidate. An `ssh://` one is reached with its
/// user, the connection's identity file (`ssh -i`) and the ssh configuration `env` names; a
/// `tcp://` one with TLS files speaks TLS with them, as Podman's client does: the files `flags`
/// names for this run, else the connection's.
fn named(
    uri: &str,
    origin: &str,
    source: String,
    conn: Option<&Conn>,
    flags: &TlsFiles,
    env: &DiscoveryEnv,
) -> Result<Candidates, DiscoveryError> {
    let endpoint = parse(uri, origin)?;
    if let Some(flagged) = flagged_tls_candidate(&endpoint, &source, flags) {
        return flagged;
    }
    let tls = conn.map(|c| &c.tls).filter(|t| t.any());
    match (&endpoint, tls) {
        (Endpoint::Ssh { .. }, None) => {
            let mut ssh = SshSettings::for_endpoint(uri, env.var(SSH_CONFIG_ENV));
            ssh.identity = conn
                .and_then(|c| c.identity.as_deref())
                .filter(|i| !i.is_empty())
                .map(PathBuf::from);
            Ok(Candidates::named(
                Target::new(endpoint).with_ssh(ssh),
                source,
            ))
        }
        (Endpoint::Tcp { .. }, Some(files)) => tls_candidate(
            endpoint,
            format!("{source}, TLS by the connection's TLS files"),
            |origin| TlsMaterial::from_files(files, origin),
        ),
        // Podman's `system connection add` refuses TLS files for anything but tcp://; a file
        // edited by hand that pairs them gets the same answer, rather than a connection that
        // silently drops what the user asked for.
        (_, Some(_)) => Err(DiscoveryError::Config {
            what: format!("{source}: TLS files (TLSCA, TLSCert, TLSKey / tls_ca, tls_cert, tls_key)"),
            path: openshell_runtime::display_value(uri),
            source: "Podman speaks TLS to tcp:// connections only; remove the TLS files or use a tcp:// URI".into(),
        }),
        (_, None) => Ok(Candidates::named(endpoint, source)),
    }
}

fn config_home(env: &DiscoveryEnv) -> Option<PathBuf> {
    env.var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".config")))
}

/// A string field of a connection, its key matched without regard to case: Podman reads the
/// JSON file with Go's decoder, which does the same (`TLSCert`, `tlscert`).
fn field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A path-valued field: empty means not set, as in Podman. A relative path stays relative:
/// Podman stores it as typed and resolves it from the working directory when used.
fn path_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<PathBuf> {
    field(obj, key).map(PathBuf::from)
}

/// The connections of `podman-connections.json`, the default one first.
fn connections_file(env: &DiscoveryEnv) -> Vec<Conn> {
    let path = env
        .var("PODMAN_CONNECTIONS_CONF")
        .map(PathBuf::from)
        .or_else(|| config_home(env).map(|c| c.join("containers/podman-connections.json")));
    let Some(text) = path.and_then(|p| read_small_text(&p, MAX_CONFIG).ok()) else {
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
            let c = c.as_object()?;
            Some(Conn {
                name: name.clone(),
                uri: field(c, "URI")?,
                default: *name == default,
                identity: field(c, "Identity"),
                tls: TlsFiles {
                    ca: path_field(c, "TLSCA"),
                    cert: path_field(c, "TLSCert"),
                    key: path_field(c, "TLSKey"),
                },
            })
        })
        .collect();
    out.sort_by_key(|c| (!c.default, c.name.clone()));
    out
}

/// A string key of a containers.conf table.
fn toml_str(t: &toml::Table, key: &str) -> Option<String> {
    t.get(key)
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The service destinations of the containers.conf files (later files override earlier ones),
/// the active one first.
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
    let mut dests: Vec<Conn> = Vec::new();
    for f in files {
        let Some(doc) = read_small_text(&f, MAX_CONFIG)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
        else {
            continue;
        };
        let Some(engine) = doc.get("engine").and_then(|e| e.as_table()) else {
            continue;
        };
        if let Some(a) = toml_str(engine, "active_service") {
            active = a;
        }
        if let Some(sd) = engine
            .get("service_destinations")
            .and_then(|s| s.as_table())
        {
            for (name, d) in sd {
                let Some(d) = d.as_table() else { continue };
                if let Some(uri) = toml_str(d, "uri") {
                    dests.retain(|c| &c.name != name);
                    dests.push(Conn {
                        name: name.clone(),
                        uri,
                        default: false,
                        identity: toml_str(d, "identity"),
                        tls: TlsFiles {
                            ca: toml_str(d, "tls_ca").map(PathBuf::from),
                            cert: toml_str(d, "tls_cert").map(PathBuf::from),
                            key: toml_str(d, "tls_key").map(PathBuf::from),
                        },
                    });
                }
            }
        }
    }
    for d in &mut dests {
        d.default = d.name == active;
    }
    dests.sort_by_key(|c| (!c.default, c.name.clone()));
    dests
}

/// The endpoint named for this run: the flag, `CONTAINER_HOST` or `CONTAINER_CONNECTION`.
/// `openshell-engine` honours these before any well-known socket even when no driver was
/// chosen, since the user set them for this very run; the configuration files' defaults come
/// after the Docker order, as they always have.
pub fn named_for_this_run(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
    flags: &TlsFiles,
) -> Result<Option<Candidates>, DiscoveryError> {
    if let Some(e) = explicit {
        return named(e, "--endpoint", "--endpoint".into(), None, flags, env).map(Some);
    }
    if let Some(h) = env.var("CONTAINER_HOST") {
        return named(
            h,
            "CONTAINER_HOST",
            "CONTAINER_HOST".into(),
            None,
            flags,
            env,
        )
        .map(Some);
    }
    if let Some(name) = env.var("CONTAINER_CONNECTION") {
        let dests = service_destinations(env);
        let conns = connections_file(env);
        let conn = conns
            .iter()
            .chain(dests.iter())
            .find(|c| c.name == name)
            .ok_or_else(|| DiscoveryError::UnknownName {
                origin: "CONTAINER_CONNECTION",
                name: openshell_runtime::display_value(name),
                searched: "podman-connections.json or containers.conf",
            })?;
        return named(
            &conn.uri,
            "CONTAINER_CONNECTION",
            format!("connection {name} (CONTAINER_CONNECTION)"),
            Some(conn),
            flags,
            env,
        )
        .map(Some);
    }
    Ok(None)
}

/// The candidates in order, without touching any of them. `flags` are the TLS files named for
/// this run: a named `tcp://` endpoint speaks TLS with them instead of any other material.
pub fn candidates(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
    flags: &TlsFiles,
) -> Result<Candidates, DiscoveryError> {
    if let Some(named) = named_for_this_run(explicit, env, flags)? {
        return Ok(named);
    }
    let conns = connections_file(env);
    let dests = service_destinations(env);
    if let Some(c) = conns.iter().find(|c| c.default) {
        return named(
            &c.uri,
            "podman-connections.json",
            format!("connection {} (podman-connections.json default)", c.name),
            Some(c),
            flags,
            env,
        );
    }
    if let Some(d) = dests.iter().find(|d| d.default).or(dests.first()) {
        return named(
            &d.uri,
            "containers.conf",
            format!("service destination {} (containers.conf)", d.name),
            Some(d),
            flags,
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

    /// Discovery without TLS files named by flags.
    fn candidates(
        explicit: Option<&str>,
        env: &DiscoveryEnv,
    ) -> Result<Candidates, DiscoveryError> {
        super::candidates(explicit, env, &TlsFiles::default())
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

    fn client_material() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openshell-transport/testdata/tls/client")
    }

    #[test]
    fn tls_files_of_a_tcp_connection_make_it_speak_tls() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        let m = client_material();
        let (ca, cert, key) = (m.join("ca.pem"), m.join("cert.pem"), m.join("key.pem"));
        std::fs::create_dir_all(h.join(".config/containers")).unwrap_or_else(|e| panic!("{e}"));
        // Podman writes TLSCA/TLSCert/TLSKey; its Go reader takes any case, so must we.
        let doc = serde_json::json!({"Connection": {"Default": "tls", "Connections": {
            "tls": {"URI": "tcp://10.0.0.9:9443", "TLSCA": ca, "TLSCert": cert, "TLSKey": key},
            "lower": {"URI": "tcp://10.0.0.9:9443", "tlsca": ca},
            "plain": {"URI": "tcp://10.0.0.9:8080"},
            "half": {"URI": "tcp://10.0.0.9:9443", "TLSCert": cert},
            "sshtls": {"URI": "ssh://core@10.0.0.9/run/podman/podman.sock", "TLSCA": ca},
            "noca": {"URI": "tcp://10.0.0.9:9443", "TLSCA": h.join("missing.pem")}
        }}});
        std::fs::write(
            h.join(".config/containers/podman-connections.json"),
            doc.to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let pick = |name: Option<&str>| {
            let vars: Vec<(&str, &str)> = name
                .map(|n| ("CONTAINER_CONNECTION", n))
                .into_iter()
                .collect();
            candidates(None, &env(&vars, h))
        };
        let c = pick(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first(&c),
            "connection tls (podman-connections.json default), TLS by the connection's TLS files=https://10.0.0.9:9443"
        );
        let tls = c.list()[0].0.tls().map(|t| t.files().clone());
        assert_eq!(
            tls.map(|f| (f.ca, f.cert, f.key)),
            Some((Some(ca.clone()), Some(cert.clone()), Some(key.clone())))
        );
        let lower = pick(Some("lower")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            lower.list()[0].0.tls().and_then(|t| t.files().ca.clone()),
            Some(ca.clone())
        );
        let plain = pick(Some("plain")).unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.list()[0].0.tls().is_none(), "{}", first(&plain));
        assert_eq!(
            first(&plain),
            "connection plain (CONTAINER_CONNECTION)=tcp://10.0.0.9:8080"
        );
        for (name, want) in [
            ("half", "cert.pem is named but the key of that certificate"),
            ("sshtls", "tcp:// connections only"),
            ("noca", "missing.pem"),
        ] {
            let err = pick(Some(name))
                .err()
                .unwrap_or_else(|| panic!("connection {name} was accepted"))
                .to_string();
            assert!(err.contains(want), "{name}: {err}");
        }

        // containers.conf names them tls_ca, tls_cert and tls_key.
        std::fs::remove_file(h.join(".config/containers/podman-connections.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            h.join(".config/containers/containers.conf"),
            format!(
                "[engine]\nactive_service = \"prod\"\n[engine.service_destinations.prod]\nuri = \"tcp://10.0.0.9:9443\"\ntls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let dest = pick(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first(&dest),
            "service destination prod (containers.conf), TLS by the connection's TLS files=https://10.0.0.9:9443"
        );
        assert!(dest.list()[0].0.tls().is_some_and(|t| t.client_auth()));
    }
}
