//! Proving a route before trusting it: one short-lived container on the sandbox network, with
//! exactly the sandbox's extra hosts, calls `host.openshell.internal:<port>` with a one-time
//! token while the listener waits where the route says (on the gateway's port, or a free one
//! when a gateway already listens there). The outcome is classified, each with a hint. The
//! probe proves the address; it speaks plain HTTP even for a TLS route, and says so.
//!
//! The probe container is removed when the probe ends, by the engine itself if the run dies
//! after starting it, and by the next run's sweep if it never started (see `reap`).
//!
//! A relay route is probed through a relay of its own: the probe starts one on the sandbox
//! network, carries the callback through it to a listener on `127.0.0.1`, and removes it.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use openshell_runtime::{NetworkMode, ProbeGate, Route, RouteKind};
use serde::Serialize;

use crate::driver::SandboxDriver;
use crate::error::EngineError;
use crate::lifecycle::{SandboxHandle, SandboxState};
use crate::listener::{is_host_address, CallbackListener, ListenerError, ListenerOptions};
use crate::reap::Sweep;
use crate::relay::{ensure_relay_image, Relay, RelayOptions};
use crate::spec::SandboxSpec;
use crate::token::new_token;

/// Time a probe container may need beyond its waits: engine calls to create, start and remove it.
const PROBE_SLACK: Duration = Duration::from_secs(60);

/// Exit codes of the probe script, one per classified failure.
const EXIT_NAME_UNRESOLVED: i64 = 3;
const EXIT_REFUSED: i64 = 4;
const EXIT_TIMEOUT: i64 = 5;

/// The relay binary's path in its image, which is also the built-in probe.
const PROBE_PROGRAM: &str = "/openshell-relay";

/// How a probe runs.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The probe image: `None` runs the built-in probe, the relay binary this build embeds
    /// (imported through the engine's API like the relay, no registry needed; see
    /// [`RelayOptions`] for where it comes from); `Some` runs a script in that image, which
    /// must have busybox's `sh`, `grep`, `timeout` and `wget` (pulled when missing).
    pub image: Option<String>,
    /// Longest the whole probe may take.
    pub timeout: Duration,
    /// How the listener binds.
    pub listener: ListenerOptions,
    /// Where a relay route's relay comes from (binary or image); its port is the listener's.
    pub relay: RelayOptions,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            image: None,
            timeout: Duration::from_secs(20),
            listener: ListenerOptions::default(),
            relay: RelayOptions::default(),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ProbeOutcome {
    /// The callback arrived.
    Ok {
        /// From container start to arrival.
        latency_ms: u64,
    },
    /// `host.openshell.internal` does not resolve to an address in the container (for
    /// instance a literal `host-gateway` line in /etc/hosts).
    NameUnresolved,
    /// The address answered, but nothing listened there.
    Refused,
    /// Nothing answered in time (wrong address, firewall).
    Timeout,
    /// The probe itself could not run (no probe image, engine error, cannot listen).
    ProbeUnavailable {
        /// Why.
        reason: String,
    },
    /// No probe was started: the route's address is the operator's, nothing the engine
    /// reported vouches for it, and it is no address of this host ([`check_target`]).
    ForeignAddress {
        /// Why, with the fix.
        reason: String,
    },
}

impl ProbeOutcome {
    /// What a person should do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ProbeOutcome::Ok { .. } => "sandboxes will be able to call back along this route",
            ProbeOutcome::NameUnresolved => "the engine did not turn the extra host into an address (host-gateway unsupported?): set host_gateway_ip to a literal address",
            ProbeOutcome::Refused => "the address is reachable but the gateway does not listen there: bind the gateway to the route's bind address",
            ProbeOutcome::Timeout => "nothing answered: the address does not reach this host from the sandbox network, or a firewall drops it (check INPUT rules for the bridge)",
            ProbeOutcome::ProbeUnavailable { .. } => "the probe could not run: check the engine, and that the probe image is available (--probe-image)",
            ProbeOutcome::ForeignAddress { .. } => "nothing was sent: the address is neither this host's nor vouched for by the engine; set host_gateway_ip to an address of this host that sandboxes reach, or unset it to let the runtime decide",
        }
    }

    /// Whether the route is proven.
    pub fn is_ok(&self) -> bool {
        matches!(self, ProbeOutcome::Ok { .. })
    }
}

/// One route and what probing it found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// What `host.openshell.internal` mapped to.
    pub openshell_host: String,
    /// Where the listener bound.
    pub bind: Option<String>,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: ProbeOutcome,
    /// The hint for it.
    pub hint: &'static str,
    /// What else a person should know about this probe (the gateway's port was busy, TLS was
    /// not probed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The listener's address was not an address of this host, neither when the probe bound it
    /// (with `IP_FREEBIND`) nor after the probe ran: no engine network brought it up, so a
    /// gateway cannot be reached there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_on_host: bool,
}

/// Why nothing is sent toward a route's address: it is the operator's, nothing in the facts
/// vouches for it (the runtime's own address, such as a VM runtime's documented host address,
/// or the sandbox network's gateway), this host does not have it, and no bridge network of the
/// engine has it as its gateway. A probe there would leave by the default route toward another
/// machine, carrying the callback URL and its token (issue 22).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForeignTarget {
    /// Neither this host's nor an engine bridge's.
    #[error("host_gateway_ip {address} is not an address of this host, nor the gateway of a bridge network of the engine, nor an address the runtime documents, so nothing is sent there: the probe (and every sandbox) would call another machine by the default route with its token. Set host_gateway_ip to an address of this host that sandboxes reach (see `ip -brief address`), or unset it to let the runtime decide")]
    Foreign {
        /// The operator's address.
        address: IpAddr,
    },
    /// Not this host's, and the engine's networks could not be listed to see whether it is a
    /// bridge's gateway: nothing is sent on a guess.
    #[error("host_gateway_ip {address} is not an address of this host, and whether it is the gateway of a bridge network of the engine is unknown (the engine's networks could not be listed: {source}), so nothing is sent there; check the engine, or set host_gateway_ip to an address of this host that sandboxes reach, or unset it to let the runtime decide")]
    Unchecked {
        /// The operator's address.
        address: IpAddr,
        /// Why the networks could not be listed.
        #[source]
        source: EngineError,
    },
}

/// Whether anything may be sent toward `route`'s address, checked before any probe container,
/// relay or listener exists. The policy says what must hold ([`Route::probe_gate`]): nothing
/// for an address the engine's evidence vouches for, wherever it is; for the operator's own
/// address, that this host has it now or that it is the gateway of one of the engine's bridge
/// networks (netavark brings a bridge's address up with its first container; a remote engine's
/// bridges are its machine's). Looking binds a socket to the address and lists the engine's
/// networks; nothing is sent to the address.
pub async fn check_target(driver: &SandboxDriver, route: &Route) -> Result<(), ForeignTarget> {
    let ProbeGate::LocalOrEngineBridge(address) = route.probe_gate() else {
        return Ok(());
    };
    if is_host_address(address) {
        return Ok(());
    }
    // Every network (an empty name filter matches all, on Docker and libpod alike); only a
    // bridge's gateway is the engine's own address (a macvlan's is a router on the LAN).
    let networks = driver
        .call("network list", driver.ops().list_networks(""))
        .await
        .map_err(|source| ForeignTarget::Unchecked { address, source })?;
    let bridge = networks.iter().any(|n| {
        let (facts, _) = openshell_runtime::Facts::network_from_value(&n.body);
        facts.driver.as_deref().unwrap_or(n.driver.as_str()) == "bridge"
            && [
                facts.ipv4_gateway.map(IpAddr::V4),
                facts.ipv6_gateway.map(IpAddr::V6),
            ]
            .contains(&Some(address))
    });
    if bridge {
        return Ok(());
    }
    Err(ForeignTarget::Foreign { address })
}

/// What the probe container prints before its exit code, so that the verdict can be read while
/// it lingers.
const VERDICT: &str = "openshell-probe-verdict=";

/// The probe's image, present in the engine, and how to make its command for a linger: the
/// built-in probe (the relay image, imported like the relay) or the script in the image named
/// in `opts`; the error is why neither can run.
async fn probe_image(
    driver: &SandboxDriver,
    opts: &ProbeOptions,
) -> Result<(String, fn(u64) -> Vec<String>), String> {
    match &opts.image {
        Some(image) => match driver.ensure_image(image).await {
            Ok(()) => Ok((image.clone(), probe_command)),
            Err(e) => Err(format!("probe image {image}: {e}")),
        },
        None => match ensure_relay_image(driver, &opts.relay).await {
            Ok(image) => Ok((image, builtin_probe_command)),
            Err(e) => Err(format!("built-in probe (the relay image): {e}")),
        },
    }
}

/// The built-in probe's command: the relay binary's probe mode, which does what the script
/// below does (see `crates/openshell-relay/src/probe.rs`) with the same verdicts.
fn builtin_probe_command(linger_secs: u64) -> Vec<String> {
    vec![
        PROBE_PROGRAM.into(),
        "probe".into(),
        linger_secs.to_string(),
    ]
}

/// The probe container's script: classify by /etc/hosts, then by wget's answer. A failure is
/// printed as a verdict line, then the container lingers `linger_secs` before it exits with the
/// same code: the engine removes a probe as soon as it exits, which could take the exit code
/// with it before anyone read it. A success exits at once; the callback itself is the signal.
fn probe_command(linger_secs: u64) -> Vec<String> {
    let script = format!(
        "verdict() {{ echo \"{VERDICT}$1\"; sleep {linger_secs}; exit $1; }}; \
         line=$(grep -E '[[:space:]]host\\.openshell\\.internal([[:space:]]|$)' /etc/hosts | head -n 1); \
         ip=${{line%%[[:space:]]*}}; \
         case \"$ip\" in ''|*[!0-9a-fA-F:.]*) echo \"probe: host.openshell.internal is '$ip'\"; verdict {EXIT_NAME_UNRESOLVED};; esac; \
         out=$(timeout 5 wget -q -O /dev/null \"$OPENSHELL_ENDPOINT/callback/$OPENSHELL_SANDBOX_ID/$OPENSHELL_TOKEN\" 2>&1); rc=$?; \
         [ $rc -eq 0 ] && exit 0; echo \"probe: $out\"; \
         case \"$out\" in *refused*) verdict {EXIT_REFUSED};; esac; verdict {EXIT_TIMEOUT}"
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The last verdict line in the probe's output.
fn verdict(output: &str) -> Option<i64> {
    output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(VERDICT)?.parse().ok())
}

fn unavailable(route: &Route, reason: String, notes: Vec<String>) -> ProbeResult {
    result(route, ProbeOutcome::ProbeUnavailable { reason }, notes)
}

fn foreign(route: &Route, e: &ForeignTarget) -> ProbeResult {
    result(
        route,
        ProbeOutcome::ForeignAddress {
            reason: e.to_string(),
        },
        Vec::new(),
    )
}

fn result(route: &Route, outcome: ProbeOutcome, notes: Vec<String>) -> ProbeResult {
    ProbeResult {
        openshell_host: route.openshell_host.to_string(),
        bind: route.bind.map(|b| b.to_string()),
        hint: outcome.hint(),
        outcome,
        notes,
        not_on_host: false,
    }
}

/// Binds the probe's listener where `route` says, on the gateway's port when it is free and on
/// a free port when it is not: the route is an address, which does not depend on the port, and
/// a running gateway (or another doctor) must not make the probe fail. The listener's route
/// speaks plain HTTP, because the listener does.
async fn probe_listener(
    route: &Route,
    opts: ListenerOptions,
    notes: &mut Vec<String>,
) -> Result<CallbackListener, ListenerError> {
    let mut at = route.clone();
    at.tls = false;
    match CallbackListener::bind(&at, opts).await {
        Err(ListenerError::Bind { addr, source }) if source.kind() == ErrorKind::AddrInUse => {
            notes.push(format!(
                "the gateway port {} on {} is in use (a running gateway, or another program): the probe used a free port, since the route does not depend on the port",
                addr.port(),
                addr.ip()
            ));
            at.port = 0;
            CallbackListener::bind(&at, opts).await
        }
        other => other,
    }
}

/// Probes one route, bounded by `opts.timeout`; the probe container is always removed. A relay
/// route ([`RouteKind::Relay`], on a bridge or in the engine's host network namespace) is
/// probed through a relay started for the probe where its sandboxes run, and removed after it.
pub async fn probe_route(
    driver: &SandboxDriver,
    route: &Route,
    opts: &ProbeOptions,
) -> ProbeResult {
    let span =
        tracing::info_span!("probe", runtime = %route.runtime, target = %route.openshell_host);
    let probe = async {
        if let Err(e) = check_target(driver, route).await {
            return foreign(route, &e);
        }
        let mut notes = Vec::new();
        if route.tls {
            notes.push("TLS is not probed: the probe proves that sandboxes reach this address, over plain HTTP; the gateway's certificate is not checked".to_string());
        }
        let listener = match probe_listener(route, opts.listener, &mut notes).await {
            Ok(l) => l,
            Err(e) => return unavailable(route, e.to_string(), notes),
        };
        if route.route_kind == RouteKind::Relay {
            probe_relay(driver, route, listener, opts, notes).await
        } else {
            let route = listener.route().clone();
            // An address bound before it existed (netavark brings a bridge's address up with
            // the network's first container) must exist once the probe has run; if it still
            // does not, it is no address of this host's.
            let unassigned = listener.used_freebind().then(|| listener.local_addr().ip());
            let mut r = probe_through(driver, &route, listener, opts, notes).await;
            if let Some(ip) = unassigned.filter(|ip| !is_host_address(*ip)) {
                r.not_on_host = true;
                r.notes.push(format!(
                    "{ip} is not an address of this host: the probe bound it before it existed (IP_FREEBIND), and no engine network brought it up"
                ));
            }
            r
        }
    };
    tracing::Instrument::instrument(probe, span).await
}

/// Starts a relay for `listener`'s port, probes through it, and removes it. The result names
/// the relay route (`relay`), with the relay's address in a note.
async fn probe_relay(
    driver: &SandboxDriver,
    route: &Route,
    listener: CallbackListener,
    opts: &ProbeOptions,
    mut notes: Vec<String>,
) -> ProbeResult {
    // The image first: without it the relay would be started for nothing.
    if let Err(e) = probe_image(driver, opts).await {
        return unavailable(route, e, notes);
    }
    let mode = route.network_mode();
    if mode == NetworkMode::Bridge {
        if let Err(e) = driver.ensure_network().await {
            return unavailable(route, format!("sandbox network: {e}"), notes);
        }
    }
    // Carried as a gateway's relay would be: through the socket where the policy says so.
    let relay_opts = RelayOptions {
        port: listener.route().port,
        carrier: openshell_runtime::relay_carrier(&route.runtime, driver.ops().endpoint()),
        ..opts.relay.clone()
    };
    let relay = match Relay::start_in(driver.clone(), relay_opts, mode).await {
        Ok(r) => r,
        Err(e) => return unavailable(route, format!("relay: {e}"), notes),
    };
    let mut r = match (relay.route(listener.route()), relay.container_id()) {
        (Ok(carried), Ok(id)) => {
            let place = match mode {
                NetworkMode::Bridge => format!("on network {}", driver.options().network),
                NetworkMode::Host => "in the engine's host network namespace".to_string(),
            };
            notes.push(format!(
                "carried by relay container {} at {} {place}",
                id.get(..12).unwrap_or(&id),
                carried.openshell_host,
            ));
            notes.push(
                match relay.carrier() {
                    openshell_runtime::RelayCarrier::Socket => {
                        "the relay carries over the gateway's bind-mounted socket"
                    }
                    openshell_runtime::RelayCarrier::Attach => {
                        "the relay carries over the engine's attach stream"
                    }
                }
                .to_string(),
            );
            if let Some(why) = relay.fallback() {
                notes.push(format!(
                    "the relay could not use the gateway's socket: {why}"
                ));
            }
            probe_through(driver, &carried, listener, opts, notes).await
        }
        (Err(e), _) | (_, Err(e)) => unavailable(route, format!("relay: {e}"), notes),
    };
    if let Err(e) = relay.shutdown().await {
        tracing::warn!(error = %e, "relay of the probe not removed");
        r.notes.push(format!(
            "the probe's relay container was not removed ({e}): the next relay start reaps it"
        ));
    }
    r.openshell_host = route.openshell_host.to_string();
    r
}

/// Runs one probe container along `route` while `listener` waits for its callback.
async fn probe_through(
    driver: &SandboxDriver,
    route: &Route,
    mut listener: CallbackListener,
    opts: &ProbeOptions,
    notes: Vec<String>,
) -> ProbeResult {
    let (image, command) = match probe_image(driver, opts).await {
        Ok(image) => image,
        Err(e) => return unavailable(route, e, notes),
    };
    let (id, token) = match (new_token(), new_token()) {
        (Ok(id), Ok(token)) => (id, token),
        (Err(e), _) | (_, Err(e)) => return unavailable(route, e.to_string(), notes),
    };
    let linger = opts.timeout.as_secs().max(1);
    let spec = SandboxSpec {
        id: format!("probe-{}", &id[..12]),
        image,
        command: command(linger),
        token,
        labels: Default::default(),
    };
    listener.expect(&spec.id, &spec.token);
    // Stale at the latest when the wait, the script's own wget and its lingering are all over.
    let lifetime = opts.timeout + Duration::from_secs(linger) + PROBE_SLACK;
    let handle = match driver.create_probe(&spec, route, lifetime).await {
        Ok(h) => h,
        Err(e) => return unavailable(route, e.to_string(), notes),
    };
    let outcome = run(driver, &handle, &spec.id, &mut listener, opts.timeout).await;
    if let Err(e) = driver.delete(&handle).await {
        tracing::warn!(error = %e, container = %handle.container_id, "probe container not removed");
    }
    result(route, outcome, notes)
}

async fn run(
    driver: &SandboxDriver,
    handle: &SandboxHandle,
    id: &str,
    listener: &mut CallbackListener,
    timeout: Duration,
) -> ProbeOutcome {
    let started = Instant::now();
    if let Err(e) = driver.start(handle).await {
        return ProbeOutcome::ProbeUnavailable {
            reason: e.to_string(),
        };
    }
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ProbeOutcome::Timeout;
        }
        if let Ok(a) = listener
            .wait_for(id, left.min(Duration::from_millis(300)))
            .await
        {
            tracing::debug!(peer = %a.peer, "probe arrived");
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            return ProbeOutcome::Ok { latency_ms };
        }
        let code = match look(driver, handle).await {
            Look::Pending => continue,
            Look::Verdict(code) => Some(code),
            Look::Vanished => None,
            Look::Failed(reason) => return ProbeOutcome::ProbeUnavailable { reason },
        };
        // One last look: the callback may have landed just as the probe gave its verdict.
        if listener
            .wait_for(id, Duration::from_millis(200))
            .await
            .is_ok()
        {
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            return ProbeOutcome::Ok { latency_ms };
        }
        return match code {
            Some(EXIT_NAME_UNRESOLVED) => ProbeOutcome::NameUnresolved,
            Some(EXIT_REFUSED) => ProbeOutcome::Refused,
            Some(EXIT_TIMEOUT) => ProbeOutcome::Timeout,
            Some(other) => ProbeOutcome::ProbeUnavailable {
                reason: format!("probe container exited with {other}"),
            },
            None => ProbeOutcome::ProbeUnavailable {
                reason: "the probe container was removed before it gave a verdict (did the image run the probe? an image named with --probe-image needs busybox's sh, grep, timeout and wget)".into(),
            },
        };
    }
}

/// What one look at a running probe found.
enum Look {
    /// No verdict yet.
    Pending,
    /// Its verdict (from its output, or its exit code).
    Verdict(i64),
    /// It is gone without a verdict: it exited and the engine removed it, or someone else did.
    Vanished,
    /// The engine failed.
    Failed(String),
}

async fn look(driver: &SandboxDriver, handle: &SandboxHandle) -> Look {
    match driver.inspect(handle).await {
        Ok(SandboxState::Exited(code)) => Look::Verdict(code),
        Ok(SandboxState::Running) => match driver.logs(handle).await {
            Ok(output) => verdict(&output).map_or(Look::Pending, Look::Verdict),
            Err(e) if e.is_not_found() => Look::Vanished,
            Err(e) => {
                // Without logs (a log driver that keeps none), the exit code comes after the
                // lingering.
                tracing::debug!(error = %e, "probe output unreadable");
                Look::Pending
            }
        },
        Ok(_) => Look::Pending,
        Err(e) if e.is_not_found() => Look::Vanished,
        Err(e) => Look::Failed(e.to_string()),
    }
}

/// Probes `first`, then each of `fallbacks` in order, until one is proven. Returns every result.
pub async fn probe_in_order(
    driver: &SandboxDriver,
    first: &Route,
    fallbacks: &[Route],
    opts: &ProbeOptions,
) -> Vec<ProbeResult> {
    let mut out = Vec::new();
    for route in std::iter::once(first).chain(fallbacks) {
        let r = probe_route(driver, route, opts).await;
        let done = r.outcome.is_ok();
        out.push(r);
        if done {
            break;
        }
    }
    out
}

/// Start-up check: no route proven, with every probe's classified outcome.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no route to the gateway is proven ({}); sandboxes would hang in Provisioning", summary(.results))]
pub struct Unverified {
    /// Every route tried and what it gave.
    pub results: Vec<ProbeResult>,
    /// Why the policy decided no route at all, when it did not.
    pub decision_error: Option<openshell_runtime::RouteError>,
}

fn summary(results: &[ProbeResult]) -> String {
    if results.is_empty() {
        return "no route was decided".into();
    }
    results
        .iter()
        .map(|r| {
            let what = match &r.outcome {
                ProbeOutcome::Ok { .. } => "ok".to_string(),
                ProbeOutcome::NameUnresolved => "name-unresolved".into(),
                ProbeOutcome::Refused => "refused".into(),
                ProbeOutcome::Timeout => "timeout".into(),
                ProbeOutcome::ProbeUnavailable { reason } => format!("probe-unavailable: {reason}"),
                ProbeOutcome::ForeignAddress { reason } => format!("foreign-address: {reason}"),
            };
            format!(
                "{} via {}: {what}; {}",
                r.openshell_host,
                r.bind.as_deref().unwrap_or("-"),
                r.hint
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// For a driver that must not start sandboxes on an unproven route: probes the decided route,
/// then the fallbacks in order, and returns the first proven one, or fails fast with every
/// classified outcome.
pub async fn require_verified_route(
    driver: &SandboxDriver,
    decision: &openshell_runtime::Decision,
    opts: &ProbeOptions,
) -> Result<(Route, Vec<ProbeResult>), Unverified> {
    let Ok(first) = &decision.route else {
        return Err(Unverified {
            results: Vec::new(),
            decision_error: decision.route.as_ref().err().cloned(),
        });
    };
    // The operator's address that is no one's here ends it before anything is created: the
    // fallbacks are the runtime's own routes, which the operator set aside.
    if let Err(e) = check_target(driver, first).await {
        return Err(Unverified {
            results: vec![foreign(first, &e)],
            decision_error: None,
        });
    }
    // Probes left by interrupted runs go first: nothing of ours outlives its run for long.
    match driver.sweep_probes(Sweep::Stale).await {
        Ok(swept) if !swept.is_empty() => {
            tracing::info!(
                count = swept.len(),
                "removed stale probe containers of earlier runs"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "stale probe containers not swept"),
    }
    let routes: Vec<&Route> = std::iter::once(first)
        .chain(decision.fallbacks.iter())
        .collect();
    let results = probe_in_order(driver, first, &decision.fallbacks, opts).await;
    match results.iter().position(|r| r.outcome.is_ok()) {
        Some(i) => {
            let mut proven = routes[i].clone();
            // The probe bound its own port; the gateway keeps the route's configured one.
            proven
                .notes
                .push(format!("proven reachable by a probe ({})", results[i].hint));
            proven.notes.extend(results[i].notes.iter().cloned());
            if proven.route_kind == RouteKind::Relay {
                proven.notes.push("the relay route needs a running relay: start one (Gateway::start, or Relay::start_in for the route's network mode) and create sandboxes with Relay::route(&route)".into());
            }
            Ok((proven, results))
        }
        None => Err(Unverified {
            results,
            decision_error: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openshell_runtime::{
        decide, EngineKind, Exposure, Facts, HostTarget, NetworkMode, Registry, Route,
        RouteContext, TargetSource,
    };

    use super::{
        check_target, probe_route, require_verified_route, verdict, ProbeOptions, ProbeOutcome,
    };
    use crate::driver::{DriverOptions, SandboxDriver};
    use crate::fake::FakeOps;
    use crate::listener::is_host_address;

    /// Addresses of the documentation ranges, which no host here has; nothing is ever sent to
    /// them (the fake engine sends nothing, and the check refuses before any listener).
    const FOREIGN: [&str; 2] = ["192.0.2.10", "2001:db8::10"];

    fn operator_route(ip: &str, mode: NetworkMode, bind: Option<&str>) -> Route {
        let ip = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
        Route {
            runtime: "native-docker".into(),
            engine: EngineKind::Docker,
            route_kind: mode.route_kind(),
            openshell_host: HostTarget::Ip(ip),
            target_source: TargetSource::Operator,
            bind: Some(bind.map_or(ip, |b| b.parse().unwrap_or_else(|e| panic!("{b}: {e}")))),
            exposure: Exposure::Operator,
            port: 17670,
            tls: false,
            why: "test".into(),
            notes: Vec::new(),
        }
    }

    /// issue 22 item 8: an operator's address that is no address of this host and that no
    /// engine evidence vouches for gets no probe: the probe is refused before any container
    /// (or relay, or image) exists, in both network modes, IPv4 and IPv6, with a loopback bind
    /// too. The old probe created its container and sent its callback toward the address.
    #[tokio::test]
    async fn a_probe_toward_a_foreign_operator_address_creates_nothing() {
        let ops = FakeOps::new();
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        let opts = ProbeOptions {
            image: Some("localhost/probe:test".into()),
            timeout: Duration::from_secs(1),
            ..ProbeOptions::default()
        };
        for ip in FOREIGN {
            assert!(!is_host_address(
                ip.parse().unwrap_or_else(|e| panic!("{e}"))
            ));
            for mode in NetworkMode::ALL {
                for bind in [None, Some("127.0.0.1")] {
                    let route = operator_route(ip, mode, bind);
                    let e = check_target(&driver, &route)
                        .await
                        .err()
                        .unwrap_or_else(|| panic!("{ip} passed"));
                    assert!(
                        e.to_string().contains(ip) && e.to_string().contains("unset it"),
                        "{e}"
                    );
                    let r = probe_route(&driver, &route, &opts).await;
                    assert!(
                        matches!(&r.outcome, ProbeOutcome::ForeignAddress { reason } if reason.contains(ip)),
                        "{r:?}"
                    );
                }
            }
        }
        assert_eq!(ops.with(|s| s.next), 0, "a container was created");
        // The same address from the engine's evidence is probed (a VM runtime's host address
        // is not this host's either): the gate is the provenance, not the address.
        let mut vouched = operator_route(FOREIGN[0], NetworkMode::Bridge, None);
        vouched.target_source = TargetSource::Runtime;
        assert!(check_target(&driver, &vouched).await.is_ok());
        // The operator's address that this host has passes, and so does an engine bridge's
        // gateway (a remote engine's, or one netavark has not brought up yet).
        let local = operator_route("127.0.0.1", NetworkMode::Host, None);
        assert!(check_target(&driver, &local).await.is_ok());
        for ip in FOREIGN {
            ops.with(|s| s.bridge_gateway = ip.parse().ok());
            for mode in NetworkMode::ALL {
                let route = operator_route(ip, mode, None);
                let r = check_target(&driver, &route).await;
                assert!(r.is_ok(), "{ip} {mode}: {r:?}");
            }
        }
    }

    /// A gateway started on the operator's foreign address refuses it before it binds or
    /// creates anything (with a loopback bind too, where the listener could bind and the
    /// sandboxes would be sent to the foreign address).
    #[tokio::test]
    async fn a_gateway_on_a_foreign_operator_address_refuses_before_anything() {
        let ops = FakeOps::new();
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        for ip in FOREIGN {
            for mode in NetworkMode::ALL {
                let route = operator_route(ip, mode, Some("127.0.0.1"));
                let started =
                    crate::gateway::Gateway::start(&driver, &route, Default::default()).await;
                assert!(
                    matches!(&started, Err(crate::gateway::GatewayError::Target(e)) if e.to_string().contains(ip)),
                    "{ip} {mode}: {started:?}"
                );
            }
        }
        assert_eq!(ops.with(|s| s.next), 0, "a container was created");
    }

    /// A gateway that must verify its route refuses the operator's foreign address at once,
    /// without sweeping, probing the fallbacks or creating anything.
    #[tokio::test]
    async fn a_verified_route_to_a_foreign_operator_address_is_refused_before_anything() {
        let ops = FakeOps::new();
        let driver = SandboxDriver::new(ops.clone(), DriverOptions::default());
        let facts = Facts::from_value(&serde_json::json!({
            "host_os": "linux",
            "endpoint": "unix:///var/run/docker.sock",
            "ping": {"Api-Version": "1.41"},
            "version": {"Version": "20.10.24", "ApiVersion": "1.41"},
            "info": {"Name": "box", "ServerVersion": "20.10.24", "OperatingSystem": "Debian GNU/Linux 12"},
            "network": {"Name": "openshell", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]}},
            "overrides": {"host_gateway_ip": FOREIGN[0]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let decision = decide(&Registry::builtin(), &facts, &RouteContext::default());
        assert!(!decision.fallbacks.is_empty(), "{decision:?}");
        let opts = ProbeOptions {
            image: Some("localhost/probe:test".into()),
            timeout: Duration::from_secs(1),
            ..ProbeOptions::default()
        };
        let e = require_verified_route(&driver, &decision, &opts)
            .await
            .err()
            .unwrap_or_else(|| panic!("a foreign address was verified"));
        assert_eq!(e.results.len(), 1, "{e}");
        assert!(
            matches!(e.results[0].outcome, ProbeOutcome::ForeignAddress { .. }),
            "{e}"
        );
        assert_eq!(ops.with(|s| s.next), 0, "a container was created");
    }

    #[test]
    fn the_last_verdict_line_counts() {
        assert_eq!(
            verdict("probe: refused\nopenshell-probe-verdict=4\n"),
            Some(4)
        );
        assert_eq!(
            verdict("openshell-probe-verdict=3\nopenshell-probe-verdict=5\n"),
            Some(5)
        );
        assert_eq!(verdict("probe: host.openshell.internal is ''\n"), None);
        assert_eq!(verdict("openshell-probe-verdict=x\n"), None);
    }
}
