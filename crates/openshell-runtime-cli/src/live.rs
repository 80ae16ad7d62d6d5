//! Live mode: turn the engine flags into the library's [`ConnectOptions`], connect, and map
//! failures to exit codes. Discovery, connecting and gathering live in `openshell-engine`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use openshell_engine::TlsFiles;
use openshell_engine::{ConnectError, ConnectOptions, Engine};
use openshell_sandbox::DriverOptions;

use crate::{to_json, usage, EngineArgs, Fail};

/// Runs `f` on a two-thread runtime (this machine's size).
pub(crate) fn block_on<F: Future>(f: F) -> Result<F::Output, Fail> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Fail {
            code: 1,
            message: format!("cannot start the async runtime: {e}"),
        })?;
    Ok(runtime.block_on(f))
}

/// Finds and connects to the engine and gathers its facts, writing the facts document to
/// `dump` when asked. Exit 2 for a malformed endpoint or context or one that requires TLS
/// without usable TLS material, 3 when no engine answers
/// (or the one the user named does not), 1 when the engine fails.
pub(crate) async fn connect(args: &EngineArgs, dump: Option<&PathBuf>) -> Result<Engine, Fail> {
    let opts = ConnectOptions {
        driver: args.driver,
        endpoint: args.endpoint.clone(),
        tls: TlsFiles {
            ca: args.tls_ca.clone(),
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
        },
        env: crate::process_env()?,
        driver_options: DriverOptions {
            network: args.network.clone(),
            timeout: Duration::from_secs(args.timeout.max(1)),
            host: None,
        },
    };
    let engine = openshell_engine::connect(&opts)
        .await
        .map_err(|e| match e {
            ConnectError::Discovery(_)
            | ConnectError::TlsUnsupported { .. }
            | ConnectError::TlsFilesWithoutEndpoint(_) => usage(e.to_string()),
            ConnectError::NoEngine { .. } | ConnectError::NamedUnreachable { .. } => Fail {
                code: 3,
                message: e.to_string(),
            },
            _ => Fail {
                code: 1,
                message: e.to_string(),
            },
        })?;
    if let Some(path) = dump {
        let text = to_json(&engine.gathered.document)?;
        std::fs::write(path, text + "\n").map_err(|e| Fail {
            code: 1,
            message: format!("cannot write {}: {e}", path.display()),
        })?;
    }
    Ok(engine)
}
