//! `openshell-runtime`: which container runtime is behind the engine, and how sandboxes reach
//! the gateway.
//!
//! Exit codes: 0 decided; 1 an engine call failed; 2 bad usage or invalid input (also an engine
//! endpoint that requires TLS without usable TLS material, never replaced by plain HTTP, and
//! for `doctor` a `host_gateway_ip` that is neither this host's nor vouched for by the engine); 3 no
//! engine answered anywhere, or the endpoint the user named did not (live mode); 4 recognised
//! but no safe route (or not recognised at all): the policy refused to guess.; `doctor` adds 5 (no route proven) and 130/143 (stopped by
//! SIGINT or SIGTERM, after removing its probe). Warnings go to stderr; `RUST_LOG` shows more.

mod bundled;
mod config;
mod doctor;
mod interrupt;
mod live;
mod report;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use openshell_engine::{DiscoveryEnv, DriverKind};
use openshell_runtime::{
    decide, signals, Facts, NetworkMode, Registry, RouteContext, RouteKindChoice,
};

use crate::config::{default_config_path, gather, read_config, Flags, Settings};
use crate::report::Report;

/// Largest facts file read: real captures are a few KiB.
const MAX_FACTS_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "openshell-runtime",
    version,
    about = "Detect the container runtime behind an engine socket and explain how sandboxes call back to the gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--driver`: a name from the drivers table (`openshell_engine::DriverKind`), whose names are
/// also the possible values `--help` shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverParser;

impl clap::builder::TypedValueParser for DriverParser {
    type Value = DriverKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DriverKind, clap::Error> {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        value.to_str().and_then(DriverKind::parse).ok_or_else(|| {
            // clap's own wording for a value outside the possible ones.
            let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                err.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            err.insert(
                ContextKind::InvalidValue,
                ContextValue::String(value.to_string_lossy().into_owned()),
            );
            err.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(DriverKind::ALL.iter().map(|k| k.as_str().into()).collect()),
            );
            err
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            DriverKind::ALL
                .iter()
                .map(|k| clap::builder::PossibleValue::new(k.as_str())),
        ))
    }
}

/// `--network-mode`: where sandboxes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// On the sandbox bridge network (the default).
    Bridge,
    /// In the engine's host network namespace.
    Host,
}

impl From<ModeArg> for NetworkMode {
    fn from(m: ModeArg) -> NetworkMode {
        match m {
            ModeArg::Bridge => NetworkMode::Bridge,
            ModeArg::Host => NetworkMode::Host,
        }
    }
}

/// `--route-kind`: which kinds of route the policy may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// A direct route on loopback or a bridge, else the relay, else a LAN bind with --allow-lan.
    Auto,
    /// Direct routes only: refuse where there is none.
    Direct,
    /// Always the relay.
    Relay,
}

impl From<KindArg> for RouteKindChoice {
    fn from(k: KindArg) -> RouteKindChoice {
        match k {
            KindArg::Auto => RouteKindChoice::Auto,
            KindArg::Direct => RouteKindChoice::Direct,
            KindArg::Relay => RouteKindChoice::Relay,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

/// Where the gateway listens and what the operator configured.
#[derive(Debug, Clone, Args)]
pub(crate) struct RouteArgs {
    /// Gateway port.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,
    /// What host.openshell.internal must map to (overrides OPENSHELL_HOST_GATEWAY_IP and gateway.toml).
    #[arg(long, value_name = "IP")]
    host_gateway_ip: Option<String>,
    /// Where the gateway binds (overrides OPENSHELL_BIND_ADDRESS and gateway.toml).
    #[arg(long, value_name = "IP")]
    bind: Option<String>,
    /// Sandboxes reach the gateway over TLS.
    #[arg(long)]
    tls: bool,
    /// Where sandboxes run: on the sandbox bridge network, or in the engine's host network
    /// namespace (overrides OPENSHELL_NETWORK_MODE and gateway.toml; default bridge).
    #[arg(long, value_enum, value_name = "MODE")]
    network_mode: Option<ModeArg>,
    /// The rootless network helper maps 10.0.2.2 to the host's loopback (slirp4netns
    /// allow_host_loopback=true); also OPENSHELL_ROOTLESS_HOST_LOOPBACK=true.
    #[arg(long)]
    rootless_host_loopback: bool,
    /// Which kinds of route may be chosen (overrides OPENSHELL_ROUTE_KIND and gateway.toml's
    /// [openshell.gateway] sandbox_route_kind; default auto).
    #[arg(long, value_enum, value_name = "KIND")]
    route_kind: Option<KindArg>,
    /// Let the gateway bind the host's LAN-facing address where that is the only direct route
    /// (also OPENSHELL_ALLOW_LAN=true or sandbox_allow_lan = true); otherwise the relay is used.
    #[arg(long)]
    allow_lan: bool,
    /// OpenShell gateway config to read (default: ~/.config/openshell/gateway.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    config: Option<PathBuf>,
    /// Ignore gateway.toml and OPENSHELL_* variables.
    #[arg(long)]
    no_config: bool,
}

/// Which engine, through which driver.
#[derive(Debug, Clone, Args)]
pub(crate) struct EngineArgs {
    /// Which driver talks to the engine (default: the first engine discovery finds).
    #[arg(long, value_parser = DriverParser)]
    driver: Option<DriverKind>,
    /// Engine endpoint (unix://, tcp://, ssh://); default: discovery.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// CA certificate (PEM) that verifies a tcp:// engine named for this run; with any TLS
    /// file the endpoint speaks TLS (without this one, the system's trusted CAs verify it).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a tcp:// engine named for this run (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Client certificate's key (PEM) for a tcp:// engine named for this run (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The sandbox network (created, labelled as ours, when missing).
    #[arg(long, default_value = openshell_runtime::consts::DEFAULT_SANDBOX_NETWORK)]
    network: String,
    /// Per-call timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide the route for one engine: the live engine (discovered, or --endpoint), or a
    /// facts file (`-` for standard input).
    Detect {
        /// Facts file (see docs/facts-format.md); without it, the live engine is asked.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["endpoint", "dump_facts", "driver", "tls_ca", "tls_cert", "tls_key"])]
        facts: Option<PathBuf>,
        /// Live mode: write the gathered facts here (attach it to a bug report; anyone can replay it with --facts).
        #[arg(long, value_name = "FILE")]
        dump_facts: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        route: RouteArgs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Prove the route on the live engine: a short-lived probe container calls back along it
    /// (and along the fallbacks, in order, until one works).
    Doctor {
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        route: RouteArgs,
        /// Image the probe container runs instead of the built-in probe (it needs busybox's sh,
        /// grep, timeout, wget; pulled when missing). Default: the built-in probe, imported
        /// into the engine like the relay (no registry needed).
        #[arg(long, value_name = "IMAGE")]
        probe_image: Option<String>,
        /// Longest one probe may take, in seconds.
        #[arg(long, default_value_t = 20)]
        probe_timeout: u64,
        /// Let the probe listener bind a wildcard address when a route asks for one.
        #[arg(long)]
        allow_wildcard: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Decide every bundled capture: the whole policy at a glance.
    Matrix {
        /// Decide for this network mode (default bridge); the recorded expectations are for
        /// bridge networking, so host mode shows the decisions without checking them.
        #[arg(long, value_enum, value_name = "MODE", default_value = "bridge")]
        network_mode: ModeArg,
        /// Decide with this route kind (default auto); expectations are checked for auto only.
        #[arg(long, value_enum, value_name = "KIND", default_value = "auto")]
        route_kind: KindArg,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
}

/// A failure with its exit code.
pub(crate) struct Fail {
    pub(crate) code: u8,
    pub(crate) message: String,
}

pub(crate) fn usage(message: impl Into<String>) -> Fail {
    Fail {
        code: 2,
        message: message.into(),
    }
}

/// Warnings (and more, with `RUST_LOG`) go to stderr: a leftover container or a healed network
/// must not pass in silence.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Detect {
            facts,
            dump_facts,
            engine,
            route,
            output,
        } => match facts {
            Some(path) => detect_file(&path, &route, output),
            None => detect_live(&engine, dump_facts.as_ref(), &route, output),
        },
        Command::Doctor {
            engine,
            route,
            probe_image,
            probe_timeout,
            allow_wildcard,
            output,
        } => doctor::run(doctor::DoctorArgs {
            engine,
            route,
            probe_image,
            probe_timeout: Duration::from_secs(probe_timeout.max(1)),
            allow_wildcard,
            output,
        }),
        Command::Matrix {
            network_mode,
            route_kind,
            output,
        } => matrix(network_mode.into(), route_kind.into(), output),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("openshell-runtime: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn read_facts(path: &PathBuf) -> Result<String, Fail> {
    let shown = path.display();
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FACTS_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FACTS_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(|e| usage(format!("cannot read facts file {shown}: {e}")))?;
    if text.len() as u64 > MAX_FACTS_BYTES {
        return Err(usage(format!(
            "facts file {shown} is over {MAX_FACTS_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// The process environment, or exit 2 naming each variable we read that is not UTF-8.
pub(crate) fn process_env() -> Result<DiscoveryEnv, Fail> {
    DiscoveryEnv::from_process().map_err(|e| usage(e.to_string()))
}

/// Lays the operator's settings (flags > env > gateway.toml) over the facts' own overrides and
/// returns them with the gateway's context.
pub(crate) fn settle(
    facts: &mut Facts,
    args: &RouteArgs,
    live_driver: Option<(&str, bool)>,
) -> Result<(Settings, RouteContext), Fail> {
    let process = if args.no_config {
        DiscoveryEnv::default()
    } else {
        process_env()?
    };
    let env = |k: &str| process.var(k).map(str::to_string);
    let config_path = if args.no_config {
        None
    } else {
        args.config.clone().or_else(|| default_config_path(&env))
    };
    let config_text = match &config_path {
        Some(p) => match read_config(p) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.config.is_none() => None,
            Err(e) => return Err(usage(format!("cannot read config {}: {e}", p.display()))),
        },
        None => None,
    };
    let flags = Flags {
        host_gateway_ip: args.host_gateway_ip.clone(),
        bind: args.bind.clone(),
        rootless_host_loopback: args.rootless_host_loopback,
        network_mode: args.network_mode.map(NetworkMode::from),
        // The driver talking to the engine is the one whose table applies.
        driver: live_driver.map(|(name, flag)| {
            let source = if flag {
                "--driver"
            } else {
                "the driver connected to the engine"
            };
            (name.to_string(), source.to_string())
        }),
        route_kind: args.route_kind.map(RouteKindChoice::from),
        allow_lan: args.allow_lan,
    };
    let engine = signals::engine_kind(facts).0;
    let settings = gather(
        &flags,
        &env,
        config_path.as_deref().zip(config_text.as_deref()),
        engine,
    )
    .map_err(|e| usage(e.to_string()))?;
    for w in &settings.warnings {
        eprintln!("openshell-runtime: warning: {w}");
    }
    settings.apply(&mut facts.overrides);
    let ctx = RouteContext {
        port: args
            .port
            .or(settings.port.as_ref().map(|p| p.value))
            .unwrap_or(RouteContext::default().port),
        tls: args.tls || settings.tls.as_ref().is_some_and(|t| t.value),
        network_mode: settings
            .network_mode
            .as_ref()
            .map_or(NetworkMode::Bridge, |m| m.value),
    };
    Ok((settings, ctx))
}

fn print_report(report: &Report<'_>, output: Output) -> Result<(), Fail> {
    match output {
        Output::Text => emit(&report.text()),
        Output::Json => emit(&format!("{}\n", to_json(report)?)),
    }
}

/// Writes `text` to stdout. A reader that went away (`| head`) ends the output quietly, as
/// for any filter; another write failure is an error, not a panic.
pub(crate) fn emit(text: &str) -> Result<(), Fail> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Fail {
            code: 1,
            message: format!("cannot write the output: {e}"),
        }),
        _ => Ok(()),
    }
}

fn detect_file(path: &PathBuf, args: &RouteArgs, output: Output) -> Result<u8, Fail> {
    let text = read_facts(path)?;
    let mut facts =
        Facts::from_json(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let (settings, ctx) = settle(&mut facts, args, None)?;
    let decision = decide(&Registry::builtin(), &facts, &ctx);
    print_report(
        &Report::new(&decision, &facts.warnings, &settings, ctx.network_mode),
        output,
    )?;
    Ok(if decision.route.is_ok() { 0 } else { 4 })
}

fn detect_live(
    engine: &EngineArgs,
    dump: Option<&PathBuf>,
    args: &RouteArgs,
    output: Output,
) -> Result<u8, Fail> {
    let engine_args = engine;
    live::block_on(async {
        let engine = live::connect(engine_args, dump).await?;
        let mut facts = engine.gathered.facts.clone();
        let (settings, ctx) = settle(
            &mut facts,
            args,
            Some((engine.driver_name(), engine_args.driver.is_some())),
        )?;
        let decision = decide(&Registry::builtin(), &facts, &ctx);
        let mut report = Report::new(&decision, &facts.warnings, &settings, ctx.network_mode);
        report.endpoint_candidates = Some(&engine.candidates);
        report.driver = Some(engine.driver_name());
        print_report(&report, output)?;
        Ok(if decision.route.is_ok() { 0 } else { 4 })
    })?
}

pub(crate) fn to_json(v: &impl serde::Serialize) -> Result<String, Fail> {
    serde_json::to_string_pretty(v).map_err(|e| Fail {
        code: 1,
        message: format!("cannot render JSON: {e}"),
    })
}

fn matrix(mode: NetworkMode, kind: RouteKindChoice, output: Output) -> Result<u8, Fail> {
    let rows = bundled::matrix(mode, kind);
    match output {
        Output::Json => emit(&format!("{}\n", to_json(&rows)?))?,
        Output::Text => {
            use std::fmt::Write as _;
            let mut text = String::new();
            let w = rows.iter().map(|r| r.capture.len()).max().unwrap_or(0);
            let _ = writeln!(text, "network mode: {mode}, route kind: {kind}");
            let _ = writeln!(
                text,
                "{:w$}  {:16} {:12} {:16} {:16} ok   host mode",
                "capture", "runtime", "route_kind", "openshell_host", "bind"
            );
            for r in &rows {
                let dash = || "-".to_string();
                let kind = match &r.error {
                    Some(_) => dash(),
                    None => serde_json::to_value(r.route_kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(dash),
                };
                let _ = writeln!(
                    text,
                    "{:w$}  {:16} {:12} {:16} {:16} {:4} {}",
                    r.capture,
                    r.runtime.clone().unwrap_or_else(dash),
                    kind,
                    r.openshell_host
                        .clone()
                        .unwrap_or_else(|| if r.error.is_some() {
                            "(refused)".into()
                        } else {
                            dash()
                        }),
                    r.bind.clone().unwrap_or_else(dash),
                    match r.as_expected {
                        Some(true) => "yes",
                        Some(false) => "NO",
                        None => "?",
                    },
                    r.host_mode.as_deref().unwrap_or("")
                );
            }
            emit(&text)?;
        }
    }
    Ok(if rows.iter().any(|r| r.as_expected == Some(false)) {
        1
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use std::collections::BTreeSet;

    /// Flags of [`RouteArgs`] that are not settings of the table: the route context's (`--port`,
    /// `--tls`, which no variable or gateway.toml key sets) and where the settings come from.
    const NOT_SETTINGS: &[&str] = &["port", "tls", "config", "no-config"];

    fn longs(cmd: &clap::Command) -> BTreeSet<String> {
        cmd.get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    }

    /// Every setting of the table with a flag has it on `detect` and `doctor`, and every flag
    /// of the operator's settings ([`RouteArgs`]) is a setting of the table (or one of the few
    /// that are not).
    #[test]
    fn every_setting_has_its_flag_and_every_flag_its_setting() {
        let cli = Cli::command();
        for sub in ["detect", "doctor"] {
            let cmd = cli
                .find_subcommand(sub)
                .unwrap_or_else(|| panic!("no {sub}"));
            let flags = longs(cmd);
            for key in crate::config::KEYS {
                if let Some(flag) = key.flag {
                    assert!(flags.contains(flag), "{sub} lacks --{flag} of {}", key.name);
                }
            }
        }
        let route = RouteArgs::augment_args(clap::Command::new("route"));
        for flag in longs(&route) {
            assert!(
                NOT_SETTINGS.contains(&flag.as_str())
                    || crate::config::KEYS
                        .iter()
                        .any(|k| k.flag == Some(flag.as_str())),
                "--{flag} is in no row of config::KEYS"
            );
        }
    }
}
