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
//! and `DOCKER_HOST`, any of `DOCKER_TLS_VERIFY`, `DOCKER_TLS` or `DOCKER_CERT_PATH`; for a
//! context, `SkipTLSVerify` or TLS material in its store (`contexts/tls/<sha256(name)>/docker/`).
//! Such a TCP endpoint is marked as requiring TLS (shown as `https://`), which the transport
//! refuses rather than speak plain HTTP to it.

use std::path::PathBuf;

use openshell_runtime::facts::Endpoint;
use openshell_sandbox::support::discover::{parse_endpoint as parse, well_known};
use openshell_sandbox::support::BoxError;
use openshell_sandbox::{Candidates, DiscoveryEnv, DiscoveryError};
use sha2::{Digest, Sha256};

fn docker_config_dir(env: &DiscoveryEnv) -> Option<PathBuf> {
    env.var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| h.join(".docker")))
}

/// The docker CLI's TLS variables, any of which makes it (or its SDK) speak TLS to the endpoint
/// given by flag or `DOCKER_HOST`.
const TLS_VARIABLES: [&str; 3] = ["DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH"];

/// `endpoint` named by `source`, marked as requiring TLS (with why, in the source) when `tls`
/// names a TLS setting and the endpoint is TCP, the only kind TLS settings apply to.
fn named(endpoint: Endpoint, source: String, tls: Option<String>) -> Candidates {
    match tls {
        Some(why) if matches!(endpoint, Endpoint::Tcp { .. }) => {
            Candidates::named(endpoint.with_tls(), format!("{source}, TLS by {why}"))
        }
        _ => Candidates::named(endpoint, source),
    }
}

/// The endpoint of a named context, from the context store, with the TLS setting it carries.
fn context_endpoint(
    name: &str,
    env: &DiscoveryEnv,
) -> Result<(Endpoint, Option<String>), DiscoveryError> {
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
    let text = std::fs::read_to_string(&path).map_err(|e| err(Box::new(e)))?;
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
    let tls = if has_material {
        Some(format!("its TLS material in {}", tls_store.display()))
    } else if skip_verify {
        Some("its SkipTLSVerify".to_string())
    } else {
        None
    };
    Ok((endpoint, tls))
}

/// The candidates in order, without touching any of them.
pub fn candidates(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
) -> Result<Candidates, DiscoveryError> {
    let env_tls = || {
        TLS_VARIABLES
            .into_iter()
            .find(|k| env.var(k).is_some())
            .map(str::to_string)
    };
    if let Some(e) = explicit {
        return Ok(named(
            parse(e, "--endpoint")?,
            "--endpoint".into(),
            env_tls(),
        ));
    }
    if let Some(h) = env.var("DOCKER_HOST") {
        return Ok(named(
            parse(h, "DOCKER_HOST")?,
            "DOCKER_HOST".into(),
            env_tls(),
        ));
    }
    let context = match env.var("DOCKER_CONTEXT") {
        Some(c) => Some((c.to_string(), "DOCKER_CONTEXT")),
        None => docker_config_dir(env)
            .and_then(|d| std::fs::read_to_string(d.join("config.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("currentContext")?.as_str().map(str::to_string))
            .filter(|c| !c.is_empty())
            .map(|c| (c, "config.json currentContext")),
    };
    if let Some((name, via)) = context.filter(|(n, _)| n != "default") {
        let (ep, tls) = context_endpoint(&name, env)?;
        let source = format!(
            "context {} ({via})",
            openshell_runtime::display_value(&name)
        );
        return Ok(named(ep, source, tls));
    }
    Ok(well_known(env, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env(vars: &[(&str, &str)], home: &Path) -> DiscoveryEnv {
        DiscoveryEnv::from_vars(vars.iter().copied(), Some(home.to_path_buf()))
    }

    fn shown(c: &Candidates) -> Vec<String> {
        c.list().iter().map(|(e, s)| format!("{s}={e}")).collect()
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

    #[test]
    fn tls_settings_mark_tcp_endpoints_only() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let h = home.path();
        let one = |explicit: Option<&str>, vars: &[(&str, &str)]| {
            let c = candidates(explicit, &env(vars, h)).unwrap_or_else(|e| panic!("{e}"));
            shown(&c).join(" ")
        };
        assert_eq!(
            one(None, &[("DOCKER_HOST", "HTTPS://10.0.0.5:2376")]),
            "DOCKER_HOST=https://10.0.0.5:2376"
        );
        assert_eq!(
            one(
                None,
                &[
                    ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
                    ("DOCKER_TLS_VERIFY", "1")
                ]
            ),
            "DOCKER_HOST, TLS by DOCKER_TLS_VERIFY=https://10.0.0.5:2376"
        );
        assert_eq!(
            one(
                Some("tcp://localhost:2376"),
                &[("DOCKER_CERT_PATH", "/certs")]
            ),
            "--endpoint, TLS by DOCKER_CERT_PATH=https://localhost:2376"
        );
        // Empty is unset, as in the CLI; sockets and SSH carry no TLS settings.
        assert_eq!(
            one(
                None,
                &[("DOCKER_HOST", "tcp://h:2375"), ("DOCKER_TLS_VERIFY", "")]
            ),
            "DOCKER_HOST=tcp://h:2375"
        );
        assert_eq!(
            one(
                None,
                &[("DOCKER_HOST", "unix:///x.sock"), ("DOCKER_TLS", "1")]
            ),
            "DOCKER_HOST=unix:///x.sock"
        );
        assert_eq!(
            one(None, &[("DOCKER_HOST", "ssh://me@h"), ("DOCKER_TLS", "1")]),
            "DOCKER_HOST=ssh://h"
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
