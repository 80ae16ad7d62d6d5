//! Where the Docker API is: the docker CLI's order, then every runtime's well-known socket.
//!
//! Order: explicit endpoint, `DOCKER_HOST`, `DOCKER_CONTEXT`, `currentContext` in
//! `$DOCKER_CONFIG/config.json` (context store `contexts/meta/<sha256(name)>/meta.json`), then
//! every runtime's well-known sockets (data in each runtime's file in `openshell-runtime`). As in
//! the CLI, an endpoint named by the user or the context is the only candidate: when it does not
//! answer, nothing else is tried behind the user's back. Every candidate is reported with its
//! source and outcome.

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

/// The endpoint of a named context, from the context store.
fn context_endpoint(name: &str, env: &DiscoveryEnv) -> Result<Endpoint, DiscoveryError> {
    let dir = docker_config_dir(env).unwrap_or_default();
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("contexts/meta").join(hex).join("meta.json");
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
    parse(host, &format!("context {name}"))
}

/// The candidates in order, without touching any of them.
pub fn candidates(
    explicit: Option<&str>,
    env: &DiscoveryEnv,
) -> Result<Candidates, DiscoveryError> {
    if let Some(e) = explicit {
        return Ok(Candidates::named(parse(e, "--endpoint")?, "--endpoint"));
    }
    if let Some(h) = env.var("DOCKER_HOST") {
        return Ok(Candidates::named(parse(h, "DOCKER_HOST")?, "DOCKER_HOST"));
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
        let ep = context_endpoint(&name, env)?;
        return Ok(Candidates::named(
            ep,
            format!(
                "context {} ({via})",
                openshell_runtime::display_value(&name)
            ),
        ));
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
