//! From nothing to a connected engine in one call: [`connect`] finds the engine (the docker
//! CLI's order, then Podman's, or the driver and endpoint you name), connects the matching
//! driver, and gathers the facts the policy decides on.
//!
//! An endpoint the user named is authoritative, as in the docker and podman CLIs: when it does
//! not answer, [`connect`] fails with [`ConnectError::NamedUnreachable`] and tries nothing else.
//! Without a chosen driver, the endpoints named for this run (`--endpoint`, `DOCKER_HOST`,
//! `DOCKER_CONTEXT` or the docker `currentContext`, then `CONTAINER_HOST` or
//! `CONTAINER_CONNECTION`) come before every well-known socket; Podman's configured default
//! connection comes after the Docker order, when no socket answered.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use openshell_engine::{connect, ConnectOptions};
//! use openshell_runtime::{decide, Registry, RouteContext};
//!
//! let engine = connect(&ConnectOptions::from_process()?).await?;
//! let decision = decide(&Registry::builtin(), &engine.gathered.facts, &RouteContext::default());
//! println!("{:?} via {}", decision.runtime_id(), engine.driver_name());
//! # Ok(()) }
//! ```
//!
//! The returned [`Engine::driver`] is a [`SandboxDriver`], whichever driver speaks to the
//! engine, so gateway code is written once for every API.
//!
//! Discovery lives here, and only here ([`discover`]): the shared half (the environment,
//! candidates, trying them) and one module per engine family's order. The drivers are one
//! table (`drivers.rs`), from which [`DriverKind`] and the discovery plan are generated.
#![deny(missing_docs)]

pub mod discover;
mod drivers;

pub use discover::{
    reads_env_var, Candidate, CandidateOutcome, Candidates, Discovery, DiscoveryEnv,
    DiscoveryError, EnvError, READ_PREFIX, READ_VARS,
};
pub use drivers::DriverKind;
use openshell_driver::PingHeaders;
use openshell_runtime::facts::Endpoint;
use openshell_sandbox::{DriverOptions, EngineError, GatheredFacts, SandboxDriver};
pub use openshell_transport::tls::TlsFiles;
pub use openshell_transport::Target;

use crate::discover::probe_candidates;

/// What [`connect`] needs to know.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The driver to use; `None` tries the Docker API's discovery order first (it also knows
    /// Podman's sockets), then Podman's (for Podman connections), except that an endpoint named
    /// for this run in either order is used alone.
    pub driver: Option<DriverKind>,
    /// An endpoint to use instead of discovery (`unix://`, `tcp://`, `ssh://`). A named endpoint
    /// is the only candidate, as in the docker and podman CLIs: if it does not answer,
    /// nothing else is tried.
    pub endpoint: Option<String>,
    /// TLS files named for this run (the CLI's `--tls-ca`, `--tls-cert`, `--tls-key`, after
    /// Podman's global flags of those names): the named endpoint (the flag, a variable, a
    /// context or connection), which must be `tcp://` (or `https://`), speaks TLS with them, in
    /// place of any material named for it elsewhere (which is then not read). Empty: none.
    pub tls: TlsFiles,
    /// The environment discovery reads.
    pub env: DiscoveryEnv,
    /// Sandbox network, per-call timeout, and (for replays) the gateway host's facts.
    pub driver_options: DriverOptions,
}

impl ConnectOptions {
    /// Options that read this process's environment, with every other field at its default.
    pub fn from_process() -> Result<ConnectOptions, EnvError> {
        Ok(ConnectOptions {
            env: DiscoveryEnv::from_process()?,
            ..ConnectOptions::default()
        })
    }
}

/// A connected engine, with where discovery looked and the facts it reported.
#[derive(Debug)]
pub struct Engine {
    /// The lifecycle over the connected driver: every endpoint discovery can choose
    /// (`unix://`, `tcp://` with or without TLS, `ssh://`) has one.
    pub driver: SandboxDriver,
    /// Every endpoint candidate, in the order tried.
    pub candidates: Vec<Candidate>,
    /// The facts, with the document they were parsed from.
    pub gathered: GatheredFacts,
}

impl Engine {
    /// `docker` or `podman`.
    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }
}

/// Why no engine could be connected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The candidates could not be listed (a malformed endpoint or context).
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// No candidate answered.
    #[error("no container engine answered; looked at:\n{}", candidates_text(.candidates).trim_end())]
    NoEngine {
        /// Every place looked at, with what it gave.
        candidates: Vec<Candidate>,
    },
    /// The endpoint the user named requires TLS, but no TLS material came with it (an
    /// `https://` endpoint given to the Podman driver, whose TLS material comes only with a
    /// connection). Nothing was sent to it: plain HTTP would carry the engine calls (and a
    /// sandbox's callback token) in the clear.
    #[error("{} (named by {}) requires TLS, and no TLS material was named for it, so it is not spoken to (never in plain HTTP); for Podman 5.7+, name a connection with TLS files (podman system connection add --tls-ca ca.pem --tls-cert cert.pem --tls-key key.pem NAME tcp://HOST:PORT, then CONTAINER_CONNECTION=NAME); for Docker, DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) or a docker context with TLS material; or reach it over ssh://; or, if it really serves plain HTTP, name it as tcp:// without TLS settings", .candidate.endpoint, .candidate.source)]
    TlsUnsupported {
        /// The named endpoint, where it was named and what asked for TLS.
        candidate: Candidate,
    },
    /// The endpoint the user named did not answer. Nothing else was tried in its place: a
    /// named endpoint is authoritative, as in the docker and podman CLIs.
    #[error("{} (named by {}) did not answer: {}; a named endpoint is used alone, so start that engine, or change or unset {}", .candidate.endpoint, .candidate.source, .candidate.outcome, .candidate.source)]
    NamedUnreachable {
        /// The named endpoint, where it was named, and what trying it gave.
        candidate: Candidate,
    },
    /// TLS files were named for this run, but not for one `tcp://` endpoint named for it.
    #[error("--tls-ca, --tls-cert and --tls-key name the TLS material of a named tcp:// endpoint (--endpoint, DOCKER_HOST, CONTAINER_HOST, a docker context or a Podman connection), and {0}; name the endpoint, or drop the TLS files")]
    TlsFilesWithoutEndpoint(String),
    /// An engine answered discovery, but connecting or gathering its facts failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One line per candidate (`  - <endpoint> [<source>]: <outcome>`), each ending in a newline.
pub fn candidates_text(candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .map(|c| format!("  - {} [{}]: {}\n", c.endpoint, c.source, c.outcome))
        .collect()
}

/// The discovery orders to try, in turn, each with the driver that speaks to what it finds.
/// A named endpoint is the whole plan: without a chosen driver, the first order (in the drivers
/// table's order) that names an endpoint for this run is used alone (`--endpoint` goes to the
/// first driver's order); otherwise every driver's order in turn.
fn plan(opts: &ConnectOptions) -> Result<Vec<(DriverKind, Candidates)>, DiscoveryError> {
    let (endpoint, env, flags) = (opts.endpoint.as_deref(), &opts.env, &opts.tls);
    if let Some(kind) = opts.driver {
        return Ok(vec![(kind, kind.candidates(endpoint, env, flags)?)]);
    }
    // The endpoint flag belongs to the first order; the others see only what names an
    // endpoint for them (their variables, a connection chosen for this run).
    let mut flag = endpoint;
    for &kind in DriverKind::ALL {
        if let Some(named) = kind.named_for_this_run(flag.take(), env, flags)? {
            return Ok(vec![(kind, named)]);
        }
    }
    DriverKind::ALL
        .iter()
        .map(|&kind| Ok((kind, kind.candidates(None, env, flags)?)))
        .collect()
}

/// Refuses TLS files named for this run when `plan` has no one named `tcp://` endpoint for
/// them (discovery has given such an endpoint the files already).
fn check_tls_files(
    plan: &[(DriverKind, Candidates)],
    files: &TlsFiles,
) -> Result<(), ConnectError> {
    if !files.any() {
        return Ok(());
    }
    let named = match plan {
        [(_, order)] if order.is_named() => match order.list() {
            [(target, source)] => Some((target, source)),
            _ => None,
        },
        _ => None,
    };
    let Some((target, source)) = named else {
        return Err(ConnectError::TlsFilesWithoutEndpoint(
            "no endpoint is named: discovery would search the well-known sockets".into(),
        ));
    };
    if !matches!(target.endpoint(), Endpoint::Tcp { .. }) {
        return Err(ConnectError::TlsFilesWithoutEndpoint(format!(
            "the endpoint named by {source} is {}",
            target.endpoint()
        )));
    }
    Ok(())
}

/// Connects the driver `kind` to `target` alone (no discovery, no facts gathered): the lifecycle
/// over it, with `opts`. For callers that already know the endpoint and the API it serves.
pub async fn connect_to(
    kind: DriverKind,
    target: impl Into<Target>,
    opts: DriverOptions,
) -> Result<SandboxDriver, EngineError> {
    connect_after_ping(kind, target.into(), opts, None).await
}

/// [`connect_to`] an engine whose `/_ping` answer discovery has just read.
async fn connect_after_ping(
    kind: DriverKind,
    target: Target,
    opts: DriverOptions,
    ping: Option<PingHeaders>,
) -> Result<SandboxDriver, EngineError> {
    let ops = kind.connect(target, opts.timeout, ping).await?;
    Ok(SandboxDriver::from_arc(ops, opts))
}

/// Finds the engine, connects the driver and gathers the engine's facts, creating the sandbox
/// network (labelled as ours) when it is missing.
pub async fn connect(opts: &ConnectOptions) -> Result<Engine, ConnectError> {
    let mut candidates = Vec::new();
    let plan = plan(opts)?;
    check_tls_files(&plan, &opts.tls)?;
    for (kind, order) in plan {
        let found = probe_candidates(order, opts.driver_options.timeout).await;
        candidates.extend(found.candidates.iter().cloned());
        let Some(chosen) = found.chosen else {
            if let (true, Some(candidate)) = (found.named, found.candidates.into_iter().next()) {
                return Err(match candidate.outcome {
                    CandidateOutcome::NeedsTls => ConnectError::TlsUnsupported { candidate },
                    _ => ConnectError::NamedUnreachable { candidate },
                });
            }
            continue;
        };
        let driver =
            connect_after_ping(kind, chosen, opts.driver_options.clone(), found.ping).await?;
        let gathered = driver.gather_facts().await?;
        return Ok(Engine {
            driver,
            candidates,
            gathered,
        });
    }
    Err(ConnectError::NoEngine { candidates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An "engine" on a Unix socket that answers every request `200 OK` and counts the
    /// connections it accepted.
    fn fake_engine(path: &Path) -> Arc<AtomicUsize> {
        let seen = Arc::new(AtomicUsize::new(0));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        }
        let listener = tokio::net::UnixListener::bind(path).unwrap_or_else(|e| panic!("{e}"));
        let count = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                    )
                    .await;
            }
        });
        seen
    }

    fn options(dir: &Path, vars: &[(&str, &str)]) -> ConnectOptions {
        let mut all: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.insert("XDG_RUNTIME_DIR".into(), dir.display().to_string());
        ConnectOptions {
            env: DiscoveryEnv {
                vars: all,
                home: Some(dir.to_path_buf()),
            },
            driver_options: DriverOptions {
                timeout: Duration::from_secs(2),
                ..DriverOptions::default()
            },
            ..ConnectOptions::default()
        }
    }

    #[tokio::test]
    async fn a_named_endpoint_that_does_not_answer_is_the_answer() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Engines at the rootless Docker and Podman well-known sockets: the fallbacks the
        // named endpoints used to be abandoned for.
        let docker = fake_engine(&dir.path().join("docker.sock"));
        let podman = fake_engine(&dir.path().join("podman/podman.sock"));
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        let tcp = format!("tcp://{closed}");
        let dead = format!("unix://{}", dir.path().join("dead.sock").display());
        for (var, value, driver) in [
            ("DOCKER_HOST", tcp.as_str(), None),
            ("DOCKER_HOST", "npipe:////./pipe/docker_engine", None),
            ("CONTAINER_HOST", dead.as_str(), None),
            ("CONTAINER_HOST", tcp.as_str(), Some(DriverKind::Podman)),
        ] {
            let opts = ConnectOptions {
                driver,
                ..options(dir.path(), &[(var, value)])
            };
            match connect(&opts).await {
                Err(ConnectError::NamedUnreachable { candidate }) => {
                    assert_eq!(candidate.source, var);
                    assert_eq!(candidate.endpoint, value);
                }
                Err(e) => panic!("{var}={value}: {e}"),
                Ok(e) => panic!("{var}={value}: connected to {}", e.driver.endpoint()),
            }
        }
        assert_eq!(
            docker.load(Ordering::SeqCst),
            0,
            "rootless Docker socket tried"
        );
        assert_eq!(
            podman.load(Ordering::SeqCst),
            0,
            "rootless Podman socket tried"
        );
    }

    /// The TLS flags give a named tcp:// endpoint its material (over the environment's, a
    /// context's or a connection's, which are then not read), and are refused, before anything
    /// is contacted, where there is no such endpoint.
    #[test]
    fn tls_files_apply_to_the_named_tcp_endpoint_alone() {
        let material = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../openshell-transport/testdata/tls/client");
        let files = TlsFiles {
            ca: Some(material.join("ca.pem")),
            cert: Some(material.join("cert.pem")),
            key: Some(material.join("key.pem")),
        };
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A Podman connection whose own TLS files are missing.
        let connections = home.path().join("podman-connections.json");
        std::fs::write(
            &connections,
            r#"{"Connection":{"Connections":{"broken":{"URI":"tcp://10.0.0.9:9443","TLSCA":"/nonexistent/ca.pem","TLSCert":"/nonexistent/cert.pem","TLSKey":"/nonexistent/key.pem"}}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let opts = |endpoint: Option<&str>, driver, vars: &[(&str, &str)]| ConnectOptions {
            driver,
            endpoint: endpoint.map(str::to_string),
            tls: files.clone(),
            env: DiscoveryEnv::from_vars(vars.iter().copied(), Some(home.path().to_path_buf())),
            ..ConnectOptions::default()
        };
        let applied = |o: &ConnectOptions| {
            let p = plan(o).unwrap_or_else(|e| panic!("{e}"));
            check_tls_files(&p, &o.tls).map(|()| {
                p.iter()
                    .map(|(k, c)| {
                        let (t, s) = &c.list()[0];
                        (
                            k.as_str(),
                            t.to_string(),
                            s.clone(),
                            t.tls().map(|m| m.files().clone()),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        };
        for (endpoint, driver, vars, source) in [
            (
                Some("tcp://10.0.0.9:9443"),
                Some(DriverKind::Podman),
                &[][..],
                "--endpoint",
            ),
            (
                None,
                None,
                &[("CONTAINER_HOST", "tcp://10.0.0.9:9443")][..],
                "CONTAINER_HOST",
            ),
            // DOCKER_TLS_VERIFY's material (here the same directory) gives way to the flags.
            (
                None,
                None,
                &[
                    ("DOCKER_HOST", "tcp://10.0.0.9:9443"),
                    ("DOCKER_TLS_VERIFY", "1"),
                    ("DOCKER_CERT_PATH", material.to_str().unwrap_or_default()),
                ][..],
                "DOCKER_HOST",
            ),
            // Material named elsewhere that cannot be read is not read: the flags replace it.
            (
                None,
                None,
                &[
                    ("DOCKER_HOST", "tcp://10.0.0.9:9443"),
                    ("DOCKER_TLS_VERIFY", "1"),
                    ("DOCKER_CERT_PATH", "/nonexistent/certs"),
                ][..],
                "DOCKER_HOST",
            ),
            (
                None,
                None,
                &[
                    ("CONTAINER_CONNECTION", "broken"),
                    (
                        "PODMAN_CONNECTIONS_CONF",
                        connections.to_str().unwrap_or_default(),
                    ),
                ][..],
                "connection broken (CONTAINER_CONNECTION)",
            ),
        ] {
            let got = applied(&opts(endpoint, driver, vars)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].1, "https://10.0.0.9:9443");
            assert_eq!(
                got[0].2,
                format!("{source}, TLS by --tls-ca/--tls-cert/--tls-key")
            );
            assert_eq!(got[0].3.as_ref(), Some(&files));
        }
        for (endpoint, vars, why) in [
            (None, &[][..], "no endpoint is named"),
            (
                Some("unix:///run/docker.sock"),
                &[][..],
                "unix:///run/docker.sock",
            ),
            (Some("ssh://me@box"), &[][..], "ssh://box"),
        ] {
            let err = applied(&opts(endpoint, None, vars))
                .err()
                .unwrap_or_else(|| panic!("{endpoint:?}: TLS files were taken"));
            assert!(
                matches!(&err, ConnectError::TlsFilesWithoutEndpoint(w) if w.contains(why)),
                "{endpoint:?}: {err}"
            );
        }
    }
}
