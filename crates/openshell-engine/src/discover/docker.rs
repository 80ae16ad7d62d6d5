//! Where the Docker API is: the docker CLI's order, then every runtime's well-known socket.
//!
//! Order: explicit endpoint, `DOCKER_HOST`, `DOCKER_CONTEXT`, `currentContext` in
//! `$DOCKER_CONFIG/config.json` (context store `contexts/meta/<sha256(name)>/meta.json`), then
//! every runtime's well-known sockets (data in each runtime's file in `openshell-runtime`). As in
//! the CLI, an endpoint named by the user or the context is the only candidate: when it does not
//! answer, nothing else is tried behind the user's back. Every candidate is reported with its
//! source and outcome.
//!
//! TLS is taken where the docker CLI and its SDK take it: an `https://` host; for `--endpoint`
//! and `DOCKER_HOST`, any of `DOCKER_TLS_VERIFY`, `DOCKER_TLS` or `DOCKER_CERT_PATH`, with the
//! material (`ca.pem`, `cert.pem`, `key.pem`) from `DOCKER_CERT_PATH`, else the docker config
//! directory (`~/.docker`); for a context, `SkipTLSVerify` or TLS material in its store
//! (`contexts/tls/<sha256(name)>/docker/`), read from that store. Such a TCP endpoint requires
//! TLS (shown as `https://`) and its material is loaded here, so a missing CA is reported with
//! its path before anything is sent. Unlike the CLI, the engine's certificate is verified even
//! where `DOCKER_TLS_VERIFY` is unset or a context says `SkipTLSVerify`.
//!
//! An `ssh://` endpoint keeps its user (`ssh -l`) and takes an ssh client configuration from
//! `OPENSHELL_SSH_CONFIG` (`ssh -F`).

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
use openshell_transport::BoxError;
use sha2::{Digest, Sha256};

fn docker_config_dir(env: &DiscoveryEnv) -> Option<PathBuf> {
    env.var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".docker")))
}

/// The docker CLI's TLS variables, any of which makes it (or its SDK) speak TLS to the endpoint
/// given by flag or `DOCKER_HOST`.
const TLS_VARIABLES: [&str; 3] = ["DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH"];

/// Where an endpoint's TLS material is, and who named that place (for messages).
struct TlsStore {
    /// Why TLS applies (`DOCKER_TLS_VERIFY`, `its TLS material in ...`).
    why: String,
    /// The directory with `ca.pem`, `cert.pem`, `key.pem`.
    dir: PathBuf,
    /// Who named the directory.
    origin: String,
}

/// `endpoint` (written as `raw`) named by `source`. A TCP endpoint speaks TLS with the files
/// `flags` names, if any; else one that requires TLS (by its scheme or by `tls`, which TLS
/// settings name) gets its material loaded from the store. An `ssh://` one gets its user and
/// the ssh configuration `env` names.
fn named(
    endpoint: Endpoint,
    raw: &str,
    source: String,
    tls: Option<TlsStore>,
    flags: &TlsFiles,
    env: &DiscoveryEnv,
) -> Result<Candidates, DiscoveryError> {
    if let Some(flagged) = flagged_tls_candidate(&endpoint, &source, flags) {
        return flagged;
    }
    let tcp = matches!(endpoint, Endpoint::Tcp { .. });
    if let Endpoint::Ssh { .. } = endpoint {
        let ssh = SshSettings::for_endpoint(raw, env.var(SSH_CONFIG_ENV));
        return Ok(Candidates::named(
            Target::new(endpoint).with_ssh(ssh),
            source,
        ));
    }
    let store = match tls {
        Some(store) if tcp => store,
        _ if endpoint.requires_tls() => default_store(env, "its https:// scheme".into()),
        _ => return Ok(Candidates::named(endpoint, source)),
    };
    tls_candidate(endpoint, format!("{source}, TLS by {}", store.why), |_| {
        TlsMaterial::load(&store.dir, &store.origin)
    })
}

/// The docker CLI's TLS directory for `--endpoint` and `DOCKER_HOST`: `DOCKER_CERT_PATH`, else
/// the docker config directory.
fn default_store(env: &DiscoveryEnv, why: String) -> TlsStore {
    match env.var("DOCKER_CERT_PATH") {
        Some(dir) => TlsStore {
            why,
            dir: PathBuf::from(dir),
            origin: "DOCKER_CERT_PATH".into(),
        },
        None => TlsStore {
            why,
            dir: docker_config_dir(env).unwrap_or_default(),
            origin: "the docker config directory, DOCKER_CERT_PATH being unset".into(),
        },
    }
}

/// The endpoint of a named context, from the context store, with the TLS setting it carries.
fn context_endpoint(
    name: &str,
    env: &DiscoveryEnv,
) -> Result<(Endpoint, String, Option<TlsStore>), DiscoveryError> {
    let dir = docker_config_dir(env).unwrap_or_default();
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("contexts/meta").join(&hex).join("meta.json");
    let tls_store = dir.join("contexts/tls").join(&hex).join("docker");
    let err = |source: BoxError| DiscoveryError::Config {
        what: format!(
            "docker context {:?}",
            openshell_runtime::display_value(name)
        ),
        path: path.display().to_string(),
        source,
    };
    let text = read_small_text(&path, MAX_CONFIG).map_err(|e| err(Box::new(e)))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(Box::new(e)))?;
    let host = doc
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .ok_or_else(|| err("the context has no Endpoints.docker.Host".into()))?;
    let endpoint = parse(host, &format!("context {name}"))?;
    let has_material = std::fs::read_dir(&tls_store).is_ok_and(|mut d| d.next().is_some());
    let skip_verify = doc
        .pointer("/Endpoints/docker/SkipTLSVerify")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let why = if has_material {
        Some(format!("its TLS material in {}", tls_store.display()))
    } else if skip_verify {
        // Verification is not skipped: the store must then hold the CA.
        Some("its SkipTLSVerify".to_string())
    } else {
        None
    };
    let tls = why.map(|why| TlsStore {
        why,
        origin: format!(
            "docker context {:?}'s TLS store",
            openshell_runtime::display_value(name)
        ),
        dir: tls_store,
    });
    Ok((endpoint, host.to_string(), tls))
}

/// The candidates in order, without touching any of them. `flags` are the TLS files named for
/// this run: a named `tcp://` endpoint speaks TLS with them instead of any other material.
pub fn candidates(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
    flags: &TlsFiles,
) -> Result<Candidates, DiscoveryError> {
    let env_tls = || {
        TLS_VARIABLES
            .into_iter()
            .find(|k| env.var(k).is_some())
            .map(|why| default_store(env, why.to_string()))
    };
    if let Some(e) = explicit {
        return named(
            parse(e, "--endpoint")?,
            e,
            "--endpoint".into(),
            env_tls(),
            flags,
            env,
        );
    }
    if let Some(h) = env.var("DOCKER_HOST") {
        return named(
            parse(h, "DOCKER_HOST")?,
            h,
            "DOCKER_HOST".into(),
            env_tls(),
            flags,
            env,
        );
    }
    let context = match env.var("DOCKER_CONTEXT") {
        Some(c) => Some((c.to_string(), "DOCKER_CONTEXT")),
        None => docker_config_dir(env)
            .and_then(|d| read_small_text(&d.join("config.json"), MAX_CONFIG).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("currentContext")?.as_str().map(str::to_string))
            .filter(|c| !c.is_empty())
            .map(|c| (c, "config.json currentContext")),
    };
    if let Some((name, via)) = context.filter(|(n, _)| n != "default") {
        let (ep, raw, tls) = context_endpoint(&name, env)?;
        let source = format!(
            "context {} ({via})",
            openshell_runtime::display_value(&name)
        );
        return named(ep, &raw, source, tls, flags, env);
    }
    Ok(well_known(env, false))
}

/// The docker CLI's order when it names one endpoint for this run (`--endpoint`,
/// `DOCKER_HOST`, `DOCKER_CONTEXT` or the configured current context): that endpoint alone.
pub fn named_for_this_run(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
    flags: &TlsFiles,
) -> Result<Option<Candidates>, DiscoveryError> {
    Ok(Some(candidates(explicit, env, flags)?).filter(Candidates::is_named))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

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

    fn shown(c: &Candidates) -> Vec<String> {
        c.list().iter().map(|(e, s)| format!("{s}={e}")).collect()
    }

    /// A FIFO `config.json` under `DOCKER_CONFIG` blocked discovery for ever (no timeout or
    /// signal ended it), and one linked to `/dev/zero` was read until memory ran out: neither
    /// is read now, and discovery goes on as without the file, at once.
    #[test]
    fn a_fifo_or_device_config_json_is_passed_over_at_once() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = home.path().join("docker");
        std::fs::create_dir(&config).unwrap_or_else(|e| panic!("{e}"));
        let file = config.join("config.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap_or_else(|e| panic!("mkfifo: {e}"));
        assert!(made.success());
        let dir = config.display().to_string();
        for round in ["fifo", "device"] {
            if round == "device" {
                std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
                std::os::unix::fs::symlink("/dev/zero", &file).unwrap_or_else(|e| panic!("{e}"));
            }
            let e = env(&[("DOCKER_CONFIG", dir.as_str())], home.path());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(candidates(None, &e).map(|c| c.is_named()));
            });
            let answer = rx.recv_timeout(std::time::Duration::from_secs(5));
            if answer.is_err() && round == "fifo" {
                // Release the blocked reader so the test leaves no thread behind.
                let _ = std::fs::OpenOptions::new().write(true).open(&file);
            }
            assert!(
                matches!(answer, Ok(Ok(false))),
                "{round}: discovery blocked or failed: {answer:?}"
            );
        }
    }

    #[test]
    fn follows_the_docker_cli_order() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        let explicit = candidates(
            Some("tcp://10.0.0.5:2376"),
            &env(&[("DOCKER_HOST", "unix:///x.sock")], h),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&explicit), ["--endpoint=tcp://10.0.0.5:2376"]);
        let dh = candidates(
            None,
            &env(
                &[("DOCKER_HOST", "unix:///x.sock"), ("DOCKER_CONTEXT", "c")],
                h,
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&dh), ["DOCKER_HOST=unix:///x.sock"]);

        // A context in the store, selected by config.json.
        let name = "colima";
        let hex: String = Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let meta = h.join(".docker/contexts/meta").join(hex);
        std::fs::create_dir_all(&meta).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(meta.join("meta.json"), r#"{"Name":"colima","Endpoints":{"docker":{"Host":"unix:///Users/me/.colima/default/docker.sock"}}}"#).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            h.join(".docker/config.json"),
            r#"{"currentContext":"colima"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ctx = candidates(None, &env(&[], h)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&ctx), ["context colima (config.json currentContext)=unix:///Users/me/.colima/default/docker.sock"]);

        // DOCKER_CONTEXT wins over config.json; "default" means the well-known sockets.
        let def = candidates(None, &env(&[("DOCKER_CONTEXT", "default")], h))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(def.list()[0].1, "well-known: Docker Engine");
        assert!(!def.is_named());
        assert!(explicit.is_named() && dh.is_named() && ctx.is_named());
        let missing = candidates(None, &env(&[("DOCKER_CONTEXT", "nope")], h));
        assert!(matches!(missing, Err(DiscoveryError::Config { .. })));
    }

    /// The transport tests' client material (`ca.pem`, `cert.pem`, `key.pem`).
    fn material() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openshell-transport/testdata/tls/client")
    }

    fn copy_material(to: &Path) {
        std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::copy(material().join(f), to.join(f)).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn tls_settings_mark_tcp_endpoints_and_load_their_material() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        let certs = material().display().to_string();
        let one = |explicit: Option<&str>, vars: &[(&str, &str)]| {
            let c = candidates(explicit, &env(vars, h)).unwrap_or_else(|e| panic!("{e}"));
            let tls = c.list()[0]
                .0
                .tls()
                .and_then(|t| t.dir().map(Path::to_path_buf));
            (shown(&c).join(" "), tls)
        };
        // Without DOCKER_CERT_PATH the material is the docker config directory's.
        let no_ca = candidates(None, &env(&[("DOCKER_HOST", "HTTPS://10.0.0.5:2376")], h));
        assert!(
            matches!(&no_ca, Err(e @ DiscoveryError::Tls { .. }) if e.to_string().contains(&format!("{}/.docker/ca.pem", h.display()))),
            "{no_ca:?}"
        );
        copy_material(&h.join(".docker"));
        assert_eq!(
            one(None, &[("DOCKER_HOST", "HTTPS://10.0.0.5:2376")]),
            (
                "DOCKER_HOST, TLS by its https:// scheme=https://10.0.0.5:2376".into(),
                Some(h.join(".docker"))
            )
        );
        assert_eq!(
            one(
                None,
                &[
                    ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
                    ("DOCKER_TLS_VERIFY", "1")
                ]
            )
            .0,
            "DOCKER_HOST, TLS by DOCKER_TLS_VERIFY=https://10.0.0.5:2376"
        );
        assert_eq!(
            one(
                Some("tcp://localhost:2376"),
                &[("DOCKER_CERT_PATH", &certs)]
            ),
            (
                "--endpoint, TLS by DOCKER_CERT_PATH=https://localhost:2376".into(),
                Some(material())
            )
        );
        let missing = candidates(
            Some("tcp://localhost:2376"),
            &env(&[("DOCKER_CERT_PATH", "/nonexistent/certs")], h),
        );
        assert!(
            matches!(&missing, Err(e @ DiscoveryError::Tls { .. }) if e.to_string().contains("/nonexistent/certs/ca.pem")),
            "{missing:?}"
        );
        // Empty is unset, as in the CLI; sockets and SSH carry no TLS settings.
        assert_eq!(
            one(
                None,
                &[("DOCKER_HOST", "tcp://h:2375"), ("DOCKER_TLS_VERIFY", "")]
            ),
            ("DOCKER_HOST=tcp://h:2375".into(), None)
        );
        assert_eq!(
            one(
                None,
                &[("DOCKER_HOST", "unix:///x.sock"), ("DOCKER_TLS", "1")]
            ),
            ("DOCKER_HOST=unix:///x.sock".into(), None)
        );
        let ssh = candidates(
            None,
            &env(
                &[
                    ("DOCKER_HOST", "ssh://me@h:2222"),
                    ("DOCKER_TLS", "1"),
                    ("OPENSHELL_SSH_CONFIG", "/etc/openshell/ssh_config"),
                ],
                h,
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&ssh), ["DOCKER_HOST=ssh://h:2222"]);
        let settings = ssh.list()[0].0.ssh();
        assert_eq!(settings.user.as_deref(), Some("me"));
        assert_eq!(
            settings.config.as_deref(),
            Some(Path::new("/etc/openshell/ssh_config"))
        );
    }

    #[test]
    fn a_context_takes_its_own_tls_store_and_never_skips_verification() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        let context = |name: &str, endpoint: &str| {
            let hex: String = Sha256::digest(name.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let meta = h.join(".docker/contexts/meta").join(&hex);
            std::fs::create_dir_all(&meta).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(meta.join("meta.json"), endpoint).unwrap_or_else(|e| panic!("{e}"));
            h.join(".docker/contexts/tls").join(hex).join("docker")
        };
        let store = context(
            "remote",
            r#"{"Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376"}}}"#,
        );
        copy_material(&store);
        let c = candidates(None, &env(&[("DOCKER_CONTEXT", "remote")], h))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.list()[0].0.to_string(), "https://10.0.0.5:2376");
        assert_eq!(
            c.list()[0].0.tls().and_then(|t| t.dir()),
            Some(store.as_path())
        );
        context(
            "insecure",
            r#"{"Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376","SkipTLSVerify":true}}}"#,
        );
        let refused = candidates(None, &env(&[("DOCKER_CONTEXT", "insecure")], h));
        assert!(
            matches!(&refused, Err(e @ DiscoveryError::Tls { .. }) if e.to_string().contains("SkipTLSVerify") && e.to_string().contains("ca.pem")),
            "{refused:?}"
        );
    }

    #[test]
    fn lists_every_runtime_socket() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        std::fs::create_dir_all(h.join(".colima/work")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(h.join(".lima/docker")).unwrap_or_else(|e| panic!("{e}"));
        let all = candidates(None, &env(&[("XDG_RUNTIME_DIR", "/run/user/1000")], h))
            .unwrap_or_else(|e| panic!("{e}"));
        let sources: Vec<&str> = all.list().iter().map(|(_, s)| s.as_str()).collect();
        for want in [
            "well-known: Docker Engine",
            "well-known: rootless Docker",
            "well-known: Docker Desktop",
            "well-known: Colima (default)",
            "well-known: Colima (work)",
            "well-known: OrbStack",
            "well-known: Rancher Desktop",
            "well-known: Lima (docker)",
            "well-known: Podman (rootful)",
            "well-known: Podman (rootless)",
        ] {
            assert!(sources.contains(&want), "{want} missing from {sources:?}");
        }
    }
}
