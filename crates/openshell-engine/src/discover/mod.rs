//! Finding an engine. This module is discovery's shared half: the environment it reads
//! ([`DiscoveryEnv`]), the candidates an order gives ([`Candidates`]), trying them in order
//! ([`probe_candidates`]), and what it reports ([`Candidate`], [`Discovery`]). Each engine
//! family's own order is a module of its own: [`docker`] (the docker CLI's), [`podman`]
//! (Podman's); the table of drivers (`drivers.rs`, above this module) names which order each
//! driver uses.
//!
//! An endpoint the user named (a flag, a variable, a context, a connection) is authoritative:
//! it is the only candidate, and when it does not answer discovery says so instead of looking
//! elsewhere, as the docker and podman CLIs do. Only the well-known sockets are a search.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openshell_driver::PingHeaders;
use openshell_runtime::facts::{Endpoint, EndpointError};
use openshell_runtime::{well_known_sockets, RuntimeId, SocketApi, SocketLocation, SocketRoot};

use serde::Serialize;
use tracing::Instrument;

use openshell_transport::raw::{self, RawError};
use openshell_transport::tls::{TlsError, TlsFiles, TlsMaterial};
use openshell_transport::transport::{Target, TransportError};
use openshell_transport::BoxError;

pub mod docker;
mod env;
pub mod podman;

pub use env::{reads_env_var, EnvError, READ_PREFIX, READ_VARS};

/// Why discovery could not list its candidates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// An endpoint string is malformed.
    #[error("{origin} names an invalid endpoint: {source}")]
    BadEndpoint {
        /// Where it came from (`DOCKER_HOST`, `context colima`, ...).
        origin: String,
        /// The parser's error.
        #[source]
        source: EndpointError,
    },
    /// A configuration file (Docker context, Podman connections) cannot be used.
    #[error("{what} cannot be read from {path}: {source}")]
    Config {
        /// What was being read, e.g. `docker context "colima"`.
        what: String,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The TLS material an endpoint needs cannot be used (a missing CA, an unpaired key).
    #[error("{endpoint} (named by {origin}) requires TLS, but its TLS material cannot be used, so nothing was sent to it: {source}")]
    Tls {
        /// The endpoint, as shown.
        endpoint: String,
        /// Where the endpoint and its TLS setting came from (`DOCKER_HOST, TLS by
        /// DOCKER_TLS_VERIFY`, `context remote`).
        origin: String,
        /// Why.
        #[source]
        source: Box<TlsError>,
    },
    /// A named connection or context is defined nowhere.
    #[error("{origin} names {name:?}, which {searched} does not define")]
    UnknownName {
        /// Where the name came from (`CONTAINER_CONNECTION`).
        origin: &'static str,
        /// The name (sanitised).
        name: String,
        /// Where it was looked up.
        searched: &'static str,
    },
}

/// One place discovery looked for an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The endpoint, as shown to people.
    pub endpoint: String,
    /// Why it was a candidate (`--endpoint`, `DOCKER_HOST`, `context foo`, `well-known: Colima`).
    pub source: String,
    /// What trying it gave.
    pub outcome: CandidateOutcome,
}

/// What trying a candidate gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "kebab-case")]
pub enum CandidateOutcome {
    /// Nothing there (no socket file).
    Absent,
    /// Something there that did not answer as an engine, and why.
    Refused(String),
    /// The endpoint requires TLS but came without TLS material: not contacted.
    NeedsTls,
    /// An engine answered `/_ping`.
    Ok,
    /// Not tried: an earlier candidate answered.
    Skipped,
}

impl fmt::Display for CandidateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CandidateOutcome::Absent => f.write_str("absent"),
            CandidateOutcome::Refused(why) => write!(f, "refused: {why}"),
            CandidateOutcome::NeedsTls => {
                f.write_str("requires TLS, and no TLS material was named (not contacted)")
            }
            CandidateOutcome::Ok => f.write_str("ok"),
            CandidateOutcome::Skipped => f.write_str("not tried"),
        }
    }
}

/// What a driver's discovery order gives before anything is tried: one endpoint the user
/// named, or the well-known sockets to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    named: bool,
    list: Vec<(Target, String)>,
}

impl Candidates {
    /// The endpoint the user named, with where it was named (`--endpoint`, `DOCKER_HOST`,
    /// `context foo (DOCKER_CONTEXT)`, ...): the only candidate.
    pub fn named(target: impl Into<Target>, source: impl Into<String>) -> Candidates {
        Candidates {
            named: true,
            list: vec![(target.into(), source.into())],
        }
    }

    /// Well-known sockets, each with its source, in the order to try them.
    pub fn well_known(list: Vec<(Endpoint, String)>) -> Candidates {
        Candidates {
            named: false,
            list: list.into_iter().map(|(e, s)| (e.into(), s)).collect(),
        }
    }

    /// Whether the user named the endpoint (then it is the only one, and authoritative).
    pub fn is_named(&self) -> bool {
        self.named
    }

    /// The candidates with their sources, in order.
    pub fn list(&self) -> &[(Target, String)] {
        &self.list
    }
}

/// Where discovery looked and what it chose.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Every candidate, in the order tried.
    pub candidates: Vec<Candidate>,
    /// The first that answered; `None` when nothing answered.
    pub chosen: Option<Target>,
    /// The headers of the chosen engine's `/_ping` answer, for the driver to connect with.
    #[serde(skip)]
    pub ping: Option<PingHeaders>,
    /// Whether the user named the one candidate: when it did not answer, nothing else may be
    /// tried in its place.
    pub named: bool,
}

/// The environment discovery reads, gathered once at the edge so tests can fake it.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryEnv {
    /// Environment variables.
    pub vars: BTreeMap<String, String>,
    /// The user's home directory.
    pub home: Option<PathBuf>,
}

impl DiscoveryEnv {
    /// An environment made of these variables and home directory (for tests and embedders
    /// that do not read the process's own).
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
        home: Option<PathBuf>,
    ) -> DiscoveryEnv {
        DiscoveryEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home,
        }
    }

    /// A variable, treating empty as unset.
    pub fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// An endpoint named by `origin` (`DOCKER_HOST`, `context colima`, ...), or why it is invalid.
pub fn parse_endpoint(raw: &str, origin: &str) -> Result<Endpoint, DiscoveryError> {
    Endpoint::parse(raw).map_err(|source| DiscoveryError::BadEndpoint {
        origin: origin.to_string(),
        source,
    })
}

/// The most bytes read from an engine client's configuration file (a Docker `config.json` or
/// context, `podman-connections.json`, containers.conf): they are a few KiB; anything larger,
/// a FIFO or a device is not read (`openshell_transport::file::read_small`).
pub(crate) const MAX_CONFIG: u64 = 4 * 1024 * 1024;

/// Who names TLS files for one run (the CLI's flags, after Podman's global flags).
pub const TLS_FLAGS: &str = "--tls-ca/--tls-cert/--tls-key";

/// `endpoint`, named by `source`, speaking TLS with the files named for this run by
/// [`TLS_FLAGS`], when any are and it is a `tcp://` endpoint; `None` otherwise. The flags
/// replace whatever else names material for it (`DOCKER_CERT_PATH`, a context's store, a
/// connection's files), which is then not read at all: a broken one cannot block them.
pub fn flagged_tls_candidate(
    endpoint: &Endpoint,
    source: &str,
    flags: &TlsFiles,
) -> Option<Result<Candidates, DiscoveryError>> {
    if !flags.any() || !matches!(endpoint, Endpoint::Tcp { .. }) {
        return None;
    }
    Some(tls_candidate(
        endpoint.clone(),
        format!("{source}, TLS by {TLS_FLAGS}"),
        |origin| TlsMaterial::from_files(flags, origin),
    ))
}

/// `endpoint`, named by `source`, as the one candidate, speaking TLS with the material `load`
/// reads (given `source`, for its messages). Material that cannot be used stops discovery,
/// naming the endpoint and where it was named: nothing is sent to it.
pub fn tls_candidate(
    endpoint: Endpoint,
    source: String,
    load: impl FnOnce(&str) -> Result<TlsMaterial, TlsError>,
) -> Result<Candidates, DiscoveryError> {
    let material = load(&source).map_err(|e| DiscoveryError::Tls {
        endpoint: endpoint.clone().with_tls().to_string(),
        origin: source.clone(),
        source: Box::new(e),
    })?;
    Ok(Candidates::named(
        Target::new(endpoint).with_tls(material),
        source,
    ))
}

/// The well-known sockets of every runtime (each runtime's `SOCKETS` in `openshell-runtime`),
/// in discovery rank, expanded against `env`: a `*` segment becomes each matching directory
/// entry that exists (the runtime's default instance first, listed even when absent), and
/// locations for another OS or under an unset root are left out. With `podman_only`, only the
/// sockets that serve libpod.
pub fn well_known(env: &DiscoveryEnv, podman_only: bool) -> Candidates {
    let os = openshell_sandbox::current_os();
    let mut seen = std::collections::BTreeSet::new();
    Candidates::well_known(
        well_known_sockets()
            .into_iter()
            .filter(|(_, loc)| !podman_only || loc.api == SocketApi::Podman)
            .filter(|(_, loc)| loc.applies_on(&os))
            .flat_map(|(_, loc)| expand(loc, env))
            // Two locations can name one socket (rootless Podman's under an XDG_RUNTIME_DIR of
            // /run is rootful Podman's): it is tried, and listed, once, under its first name.
            .filter(|(endpoint, _)| seen.insert(endpoint.to_string()))
            .collect(),
    )
}

/// One runtime's well-known sockets expanded against `env`, as [`well_known`] lists them.
pub fn sockets_of(runtime: RuntimeId, env: &DiscoveryEnv) -> Vec<(Endpoint, String)> {
    let os = openshell_sandbox::current_os();
    runtime
        .sockets()
        .iter()
        .filter(|loc| loc.applies_on(&os))
        .flat_map(|loc| expand(loc, env))
        .collect()
}

/// Every socket `loc` names here, each with its source for the discovery report.
fn expand(loc: &SocketLocation, env: &DiscoveryEnv) -> Vec<(Endpoint, String)> {
    let source = |instance: Option<&str>| match instance {
        Some(i) => format!(
            "well-known: {} ({})",
            loc.label,
            openshell_runtime::display_value(i)
        ),
        None => format!("well-known: {}", loc.label),
    };
    let root = match loc.root {
        SocketRoot::NamedPipe => {
            let pipe = Endpoint::Npipe {
                path: loc.path.to_string(),
            };
            return vec![(pipe, source(None))];
        }
        SocketRoot::Absolute => Some(PathBuf::from("/")),
        SocketRoot::Home => env.home.clone(),
        SocketRoot::XdgRuntimeDir => env.var("XDG_RUNTIME_DIR").map(PathBuf::from),
        SocketRoot::TmpDir => env.var("TMPDIR").map(PathBuf::from),
    };
    let Some(root) = root else {
        return Vec::new();
    };
    let unix = |rel: &str| Endpoint::Unix {
        path: root.join(rel.trim_start_matches('/')).display().to_string(),
    };
    let Some(pattern) = loc.instances() else {
        return vec![(unix(loc.path), source(None))];
    };
    let mut names: Vec<String> = std::fs::read_dir(root.join(pattern.dir))
        .map(|entries| {
            entries
                .flatten()
                // An instance whose socket lies below it is a directory.
                .filter(|e| pattern.rest.is_empty() || e.path().is_dir())
                .filter_map(|e| {
                    pattern
                        .instance(&e.file_name().to_string_lossy())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if let Some(first) = loc.default_instance {
        names.retain(|n| n != first);
        names.insert(0, first.to_string());
    }
    names
        .iter()
        .map(|name| (unix(&pattern.path(name)), source(Some(name))))
        .collect()
}

/// Tries the candidates in order; the first engine that answers `/_ping` is chosen (an `ssh://`
/// endpoint through an ssh connection, like every later call).
pub async fn probe_candidates(candidates: Candidates, timeout: Duration) -> Discovery {
    let Candidates { named, list } = candidates;
    let mut out = Vec::new();
    let mut chosen = None;
    let mut ping = None;
    for (ep, source) in list {
        let endpoint = ep.to_string();
        let outcome = if chosen.is_some() {
            CandidateOutcome::Skipped
        } else if let Endpoint::Unix { path } = ep.endpoint() {
            if !Path::new(path).exists() {
                CandidateOutcome::Absent
            } else {
                probe(&ep, timeout, &mut chosen, &mut ping).await
            }
        } else {
            probe(&ep, timeout, &mut chosen, &mut ping).await
        };
        out.push(Candidate {
            endpoint,
            source,
            outcome,
        });
    }
    Discovery {
        candidates: out,
        chosen,
        ping,
        named,
    }
}

async fn probe(
    ep: &Target,
    timeout: Duration,
    chosen: &mut Option<Target>,
    ping: &mut Option<PingHeaders>,
) -> CandidateOutcome {
    let span = tracing::info_span!("engine_call", call = "_ping", endpoint = %ep);
    match raw::get(ep, "/_ping", timeout).instrument(span).await {
        Ok(r) if r.status == 200 => {
            *chosen = Some(ep.clone());
            *ping = Some(r.headers);
            CandidateOutcome::Ok
        }
        // The body says why, when there is one: dockerd's TLS port answers plain HTTP with 400
        // "Client sent an HTTP request to an HTTPS server".
        Ok(r) => {
            let body = String::from_utf8_lossy(&r.body);
            let body = body.trim();
            CandidateOutcome::Refused(if body.is_empty() {
                format!("/_ping answered HTTP {}", r.status)
            } else {
                format!(
                    "/_ping answered HTTP {}: {}",
                    r.status,
                    openshell_runtime::display_value(body)
                )
            })
        }
        Err(RawError::Transport(TransportError::TlsRequired(_))) => CandidateOutcome::NeedsTls,
        Err(e) => CandidateOutcome::Refused(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openshell_transport::ssh::SshSettings;

    fn shown(c: &Candidates) -> Vec<String> {
        c.list().iter().map(|(e, s)| format!("{s}={e}")).collect()
    }

    /// Plain `tcp://` to dockerd's TLS port was reported as "HTTP 400" alone; the engine's
    /// body says why, and is shown (escaped, capped). A one-shot server on loopback.
    #[tokio::test]
    async fn a_refusal_shows_what_the_engine_said() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let server = tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                    .await;
            }
        });
        let target = Target::new(
            Endpoint::parse(&format!("tcp://127.0.0.1:{port}")).unwrap_or_else(|e| panic!("{e}")),
        );
        let outcome = probe(&target, Duration::from_secs(5), &mut None, &mut None).await;
        server.abort();
        let CandidateOutcome::Refused(said) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(said.contains("HTTP 400"), "{said}");
        assert!(said.contains("HTTPS server"), "{said}");
    }

    /// `detect` with no engine listed unix:///run/podman/podman.sock twice: as rootful
    /// Podman's and as rootless Podman's under an XDG_RUNTIME_DIR of /run.
    #[test]
    fn each_well_known_socket_is_listed_once() {
        let h = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = DiscoveryEnv::from_vars([("XDG_RUNTIME_DIR", "/run")], Some(h.path().into()));
        let listed: Vec<String> = well_known(&env, false)
            .list()
            .iter()
            .map(|(t, _)| t.endpoint().to_string())
            .collect();
        let podman = listed
            .iter()
            .filter(|e| e.as_str() == "unix:///run/podman/podman.sock")
            .count();
        assert_eq!(podman, 1, "{listed:?}");
        let unique: std::collections::BTreeSet<_> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "{listed:?}");
    }

    #[test]
    fn expands_instances_defaults_first_and_skips_unset_roots() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        for dir in [
            ".colima/work",
            ".lima/docker",
            ".local/share/containers/podman/machine/qemu",
        ] {
            std::fs::create_dir_all(h.join(dir)).unwrap_or_else(|e| panic!("{e}"));
        }
        // A file beside the machine directories is not an instance.
        std::fs::write(
            h.join(".local/share/containers/podman/machine/config.json"),
            "{}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let env = DiscoveryEnv::from_vars([], Some(h.to_path_buf()));
        let all = shown(&well_known(&env, false));
        let at = |want: &str| {
            all.iter()
                .position(|s| s.starts_with(want))
                .unwrap_or_else(|| panic!("{want} missing from {all:?}"))
        };
        let root = h.display();
        assert_eq!(
            all[0],
            "well-known: Docker Engine=unix:///var/run/docker.sock"
        );
        assert!(at("well-known: Colima (default)") < at("well-known: Colima (work)"));
        assert!(all.contains(&format!(
            "well-known: Lima (docker)=unix://{root}/.lima/docker/sock/docker.sock"
        )));
        assert!(all.contains(&format!("well-known: Podman machine (qemu)=unix://{root}/.local/share/containers/podman/machine/qemu/podman.sock")));
        assert!(!all.iter().any(|s| s.contains("config.json")), "{all:?}");
        // No XDG_RUNTIME_DIR: the rootless sockets are not guessed.
        assert!(!all.iter().any(|s| s.contains("rootless")), "{all:?}");
        // Podman's discovery sees only the sockets that serve libpod.
        let podman = shown(&well_known(&env, true));
        assert!(podman.iter().all(|s| s.contains("Podman")), "{podman:?}");
    }

    /// Podman 5's machine API socket on Linux sits in the runtime directory (the path
    /// `scripts/vm.sh` forwards to, as `podman machine start` does).
    #[test]
    fn podman_5_machine_socket_in_the_runtime_directory() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let xdg = home.path().join("run");
        std::fs::create_dir_all(xdg.join("podman")).unwrap_or_else(|e| panic!("{e}"));
        let sock = xdg.join("podman/podman-machine-default-api.sock");
        std::fs::write(&sock, "").unwrap_or_else(|e| panic!("{e}"));
        let x = xdg.display().to_string();
        let env = DiscoveryEnv::from_vars([("XDG_RUNTIME_DIR", x.as_str())], None);
        let all = shown(&well_known(&env, true));
        let want = format!("=unix://{}", sock.display());
        assert!(
            all.iter().any(
                |s| s.starts_with("well-known: Podman machine (Podman 5, Linux)")
                    && s.ends_with(&want)
            ),
            "{all:?}"
        );
    }

    /// A stand-in for the ssh client: records its arguments, then runs `body`.
    fn fake_ssh(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        let args = dir.join(format!("{name}.args"));
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n{body}\n",
            args.display()
        );
        openshell_transport::testing::write_script(&path, &script);
        path
    }

    #[tokio::test]
    async fn reports_absent_and_refused_and_probes_ssh_through_the_ssh_client() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A socket file with nobody accepting on it: refused.
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap_or_else(|e| panic!("{e}")));
        let one = |raw: &str| {
            Candidates::named(
                Endpoint::parse(raw).unwrap_or_else(|e| panic!("{e}")),
                "--endpoint",
            )
        };
        let timeout = Duration::from_secs(1);
        let d = probe_candidates(one(&format!("unix://{}", dead.display())), timeout).await;
        assert!(
            matches!(d.candidates[0].outcome, CandidateOutcome::Refused(_)),
            "{:?}",
            d.candidates
        );
        assert!(d.chosen.is_none());
        let absent = probe_candidates(one("unix:///nonexistent/openshell.sock"), timeout).await;
        assert_eq!(absent.candidates[0].outcome, CandidateOutcome::Absent);

        // ssh:// goes through the ssh client (a stand-in here: nothing leaves this host), with
        // host keys checked and the destination after `--`.
        let ssh = |program: PathBuf| {
            let endpoint = Endpoint::parse("ssh://me@build.example.org:2222")
                .unwrap_or_else(|e| panic!("{e}"));
            let settings = SshSettings {
                user: Some("me".into()),
                program: Some(program),
                ..Default::default()
            };
            Candidates::named(Target::new(endpoint).with_ssh(settings), "--endpoint")
        };
        // As the session's master (`-N`, `ControlMaster=yes`) it only makes its control
        // socket's path exist, and stays; as a client riding it, it answers.
        let answers = fake_ssh(
            dir.path(),
            "answers",
            r#"case "$*" in *ControlMaster=yes*)
  for a in "$@"; do case "$a" in ControlPath=*) : > "${a#ControlPath=}";; esac; done
  exec sleep 30;;
esac
read -r line; printf 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK'"#,
        );
        let up = probe_candidates(ssh(answers), Duration::from_secs(5)).await;
        assert_eq!(up.candidates[0].outcome, CandidateOutcome::Ok, "{up:?}");
        let args = std::fs::read_to_string(dir.path().join("answers.args"))
            .unwrap_or_else(|e| panic!("{e}"));
        let args: Vec<&str> = args.lines().collect();
        for want in [
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "-l",
            "me",
            "-p",
            "2222",
        ] {
            assert!(args.contains(&want), "{want} missing from {args:?}");
        }
        assert!(
            args.ends_with(&["--", "build.example.org", "docker", "system", "dial-stdio"]),
            "{args:?}"
        );
        let refuses = fake_ssh(
            dir.path(),
            "refuses",
            "echo 'Host key verification failed.' >&2; exit 255",
        );
        let down = probe_candidates(ssh(refuses), Duration::from_secs(5)).await;
        assert!(
            matches!(&down.candidates[0].outcome, CandidateOutcome::Refused(why) if why.contains("Host key verification failed")),
            "{down:?}"
        );
        assert!(down.chosen.is_none());
    }
}
