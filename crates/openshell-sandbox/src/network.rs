//! Owning the sandbox network: found, or created once, by any number of runs at the same time.
//!
//! Creating a network by name is not atomic on every engine. Podman refuses a second network
//! of the same name (libpod with 409, Podman 4.3's Docker-compatible API with 500). dockerd
//! before 25 checks names without a lock, `CheckDuplicate` included: eight concurrent creates
//! on dockerd 20.10 made eight networks of one name, and every later container create by that
//! name failed as ambiguous. So creation here is three steps:
//!
//! 1. runs of one user on this host take turns (a lock file only that user can hold,
//!    [`HostLock`]), so they never race;
//! 2. a create that fails because the network appeared meanwhile (Conflict, or Podman's 500)
//!    is followed by another look, not reported;
//! 3. several networks of our name, all labelled as ours (left by runs on other hosts, or by
//!    older versions), are healed: every run removes them in the same order (highest id first)
//!    until one is left, so concurrent healers agree on the survivor; a network in use is never
//!    removed (the engine refuses), and what cannot be healed is an error naming the ids.
//!
//! A network we create gets a subnet of its own, named in the create: dockerd grants a
//! container a fixed address (a replaced relay keeping its predecessor's, docs/relay.md) only
//! on a network created with a subnet. The engine still picks it: a scratch network is created
//! without one, inspected and removed, and its subnet is the one asked for ([`engine_subnet`]).

use std::collections::BTreeMap;
use std::time::Duration;

use openshell_runtime::consts::{LABEL_MANAGED, LABEL_SCRATCH};
use serde_json::Value;

use openshell_driver::{ErrorKind, NetworkInfo, Subnet};

use crate::driver::SandboxDriver;
use crate::error::EngineError;
use crate::reap::{self, Sweep};

/// Pause between attempts to take the host-wide lock.
const LOCK_PAUSE: Duration = Duration::from_millis(20);

/// Whether an object carries our label.
pub(crate) fn is_ours(labels: &BTreeMap<String, String>) -> bool {
    labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
}

/// The sandbox network's inspect body, creating it (bridge, labelled as ours, without DNS) when
/// missing and healing duplicates of ours. A same-named network with another driver is refused.
///
/// A network of ours that has DNS (made by a version before issue 21) is replaced when no
/// container uses it: on rootless Podman 5 without a systemd user session no container can
/// start on it. A network the operator made with DNS is used as it is, with a warning.
pub(crate) async fn ensure(driver: &SandboxDriver) -> Result<Value, EngineError> {
    let name = driver.options().network.as_str();
    let mut found = find_or_create(driver, name).await?;
    if dns_enabled(&found.body) {
        if is_ours(&found.labels) && retire(driver, name, &found).await {
            found = find_or_create(driver, name).await?;
        } else {
            tracing::warn!(
                network = name,
                "the sandbox network has DNS enabled; we do not use it, and on rootless Podman 5 without a systemd user session every container start on it fails (aardvark-dns cannot start): remove it so that the gateway creates it without DNS, or create it with `podman network create --disable-dns`"
            );
        }
    }
    if found.driver != "bridge" {
        return Err(EngineError::NetworkConflict {
            name: name.to_string(),
            driver: openshell_runtime::display_value(&found.driver),
        });
    }
    Ok(found.body)
}

/// Whether the engine says the network has DNS. Only libpod's inspect says so
/// (`dns_enabled`); Docker's has no such switch, and Podman's Docker-compatible inspect leaves
/// it out.
pub(crate) fn dns_enabled(body: &Value) -> bool {
    body.get("dns_enabled").and_then(Value::as_bool) == Some(true)
}

/// Removes our network `found` (by id, so that a network another run made meanwhile is left
/// alone) to make room for one without DNS. Whether it is gone; a network in use stays.
async fn retire(driver: &SandboxDriver, name: &str, found: &NetworkInfo) -> bool {
    let id = if found.id.is_empty() {
        name
    } else {
        found.id.as_str()
    };
    match driver
        .call("network remove", driver.ops().remove_network(id))
        .await
    {
        Ok(()) => {
            tracing::warn!(network = name, id, "removed our sandbox network made with DNS (by an older version); it is created again without");
            true
        }
        // Another run retired it first.
        Err(e) if e.is_not_found() => true,
        Err(e) => {
            tracing::warn!(network = name, id, error = %e, "our sandbox network has DNS (made by an older version) and cannot be replaced while in use; on rootless Podman 5 without a systemd user session containers cannot start on it");
            false
        }
    }
}

/// The network called `name`: inspected, or created (under the host-wide lock) when missing.
async fn find_or_create(driver: &SandboxDriver, name: &str) -> Result<NetworkInfo, EngineError> {
    let found = match driver
        .call("network inspect", driver.ops().inspect_network(name))
        .await
    {
        Ok(net) => net,
        // Missing, or shared by several networks (dockerd before 25 answers 400 "ambiguous"):
        // only a list tells which.
        Err(e) if matches!(e.kind(), Some(ErrorKind::NotFound | ErrorKind::Rejected)) => {
            settle(driver, name, e).await?
        }
        Err(e) => return Err(e),
    };
    Ok(found)
}

/// The subnet (and its gateway) the engine picks for a new network: that of a scratch network
/// created without one, then removed. `None` when that fails or the engine names no IPv4
/// subnet; the network is then created without one.
///
/// The scratch network names this run as its owner and expires after [`SCRATCH_LIFETIME`]: a
/// run interrupted before it removed it (SIGKILL, or SIGINT while the create was under way)
/// leaves it to the next run that creates `name` ([`sweep_scratch`]).
async fn engine_subnet(
    driver: &SandboxDriver,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Subnet> {
    let scratch = format!("{name}{SCRATCH_INFIX}{}", crate::token::random_hex(4).ok()?);
    let mut labels = labels.clone();
    labels.extend(reap::owner_labels(&reap::Owner::here(), SCRATCH_LIFETIME));
    labels.insert(LABEL_SCRATCH.to_string(), name.to_string());
    driver
        .call(
            "network create",
            driver.ops().create_network(&scratch, &labels, None),
        )
        .await
        .map_err(|e| tracing::debug!(error = %e, "scratch network not created"))
        .ok()?;
    let info = driver
        .call("network inspect", driver.ops().inspect_network(&scratch))
        .await;
    if let Err(e) = crate::driver::remove_retrying("network", || {
        driver.call("network remove", driver.ops().remove_network(&scratch))
    })
    .await
    {
        tracing::warn!(error = %e, network = %scratch, "scratch network not removed");
    }
    subnet_of(&info.ok()?.body)
}

/// What a scratch network's name puts between the name it picks a subnet for and its random
/// part.
const SCRATCH_INFIX: &str = "-subnet-";

/// How long a scratch network may be left before any run removes it: one lives for a create,
/// an inspect and a remove, so one this old was left by a run that was interrupted.
const SCRATCH_LIFETIME: Duration = Duration::from_secs(600);

/// Removes the scratch networks for `name` that interrupted runs left: ours, marked as scratch
/// for `name`, whose run is gone from this host or that expired (the same evidence as for
/// probes, `reap::sweep_reason`). A live run's is left alone; failures are logged, never fatal.
async fn sweep_scratch(driver: &SandboxDriver, name: &str) {
    let listed = match driver
        .call("network list", driver.ops().list_networks(name))
        .await
    {
        Ok(listed) => listed,
        Err(e) => {
            tracing::debug!(error = %e, "scratch networks not listed");
            return;
        }
    };
    let (here, now) = (reap::Owner::here(), reap::now_secs());
    for net in listed {
        let scratch_for = net.labels.get(LABEL_SCRATCH).map(String::as_str);
        let named_so = net
            .name
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(SCRATCH_INFIX));
        if !is_ours(&net.labels) || scratch_for != Some(name) || !named_so {
            continue;
        }
        let Some(reason) =
            reap::sweep_reason(Sweep::Stale, &net.labels, &here, now, &reap::pid_alive)
        else {
            continue;
        };
        let target = if net.id.is_empty() {
            &net.name
        } else {
            &net.id
        };
        match driver
            .call("network remove", driver.ops().remove_network(target))
            .await
        {
            Ok(()) => {
                tracing::info!(network = %net.name, %reason, "removed a scratch network an interrupted run left")
            }
            Err(e) => {
                tracing::warn!(network = %net.name, error = %e, "scratch network left by an interrupted run not removed")
            }
        }
    }
}

/// The first IPv4 subnet in a network's inspect body, with its gateway: Docker's
/// `IPAM.Config[]` (`Subnet`, `Gateway`), or libpod's `subnets[]` (`subnet`, `gateway`).
fn subnet_of(body: &Value) -> Option<Subnet> {
    let docker = body["IPAM"]["Config"].as_array().into_iter().flatten();
    let libpod = body["subnets"].as_array().into_iter().flatten();
    let pair = |c: &Value, s: &str, g: &str| {
        let subnet = c[s].as_str()?;
        let (ip, _) = subnet.split_once('/')?;
        ip.parse::<std::net::Ipv4Addr>().ok()?;
        Some(Subnet {
            subnet: subnet.to_string(),
            gateway: c[g].as_str().map(str::to_string),
        })
    };
    docker
        .filter_map(|c| pair(c, "Subnet", "Gateway"))
        .chain(libpod.filter_map(|c| pair(c, "subnet", "gateway")))
        .next()
}

/// Every network called exactly `name` (the engines' filters match more).
async fn named(driver: &SandboxDriver, name: &str) -> Result<Vec<NetworkInfo>, EngineError> {
    let all = driver
        .call("network list", driver.ops().list_networks(name))
        .await?;
    Ok(all.into_iter().filter(|n| n.name == name).collect())
}

/// Makes exactly one network called `name` exist, under the host-wide lock, and inspects it.
/// `looked` is the inspect failure that brought us here, returned when it was not about a
/// missing or shared name.
async fn settle(
    driver: &SandboxDriver,
    name: &str,
    looked: EngineError,
) -> Result<NetworkInfo, EngineError> {
    let _turn = HostLock::acquire(name, driver.options().timeout).await;
    let mut nets = named(driver, name).await?;
    if nets.is_empty() {
        if !looked.is_not_found() {
            return Err(looked);
        }
        let labels = BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
        sweep_scratch(driver, name).await;
        let subnet = engine_subnet(driver, name, &labels).await;
        let mut created = driver
            .call(
                "network create",
                driver.ops().create_network(name, &labels, subnet.as_ref()),
            )
            .await;
        if let (Some(subnet), Err(e)) = (&subnet, &created) {
            // Taken meanwhile (a run creating another network picked the same one: Podman 500
            // "subnet is already used"), or refused: the engine's own pick then. A name taken
            // meanwhile fails again, and is looked at below.
            tracing::warn!(error = %e, network = name, subnet = %subnet.subnet, "network not created on the engine's subnet; creating it without one (a replaced relay may then change address)");
            created = driver
                .call(
                    "network create",
                    driver.ops().create_network(name, &labels, None),
                )
                .await;
        }
        let conflict = match created {
            Ok(()) => None,
            // Someone else created it since we looked: libpod answers 409, Podman 4.3's
            // Docker-compatible API 500. Look again.
            Err(e) if matches!(e.kind(), Some(ErrorKind::Conflict | ErrorKind::Transient)) => {
                tracing::debug!(error = %e, network = name, "network created by someone else meanwhile");
                Some(e)
            }
            Err(e) => return Err(e),
        };
        nets = named(driver, name).await?;
        if nets.is_empty() {
            // Neither our create nor anyone else's left a network.
            return Err(conflict.unwrap_or(looked));
        }
    }
    if nets.len() > 1 {
        nets = heal(driver, name, nets).await?;
    }
    match nets.as_slice() {
        // By id: the name may still be shared with a network being removed by another run.
        [one] if !one.id.is_empty() => {
            driver
                .call("network inspect", driver.ops().inspect_network(&one.id))
                .await
        }
        [_] => {
            driver
                .call("network inspect", driver.ops().inspect_network(name))
                .await
        }
        _ => Err(EngineError::DuplicateNetworks {
            name: name.to_string(),
            ids: nets
                .iter()
                .map(|n| n.id.chars().take(12).collect())
                .collect(),
        }),
    }
}

/// Removes duplicates of ours, highest id first, until one is left; returns what is left. A
/// name shared with a network that is not ours is left alone for the operator.
async fn heal(
    driver: &SandboxDriver,
    name: &str,
    mut nets: Vec<NetworkInfo>,
) -> Result<Vec<NetworkInfo>, EngineError> {
    if !nets.iter().all(|n| is_ours(&n.labels)) {
        return Ok(nets);
    }
    nets.sort_by(|a, b| b.id.cmp(&a.id));
    let mut left = nets.len();
    for net in &nets {
        if left == 1 {
            break;
        }
        match driver
            .call("network remove", driver.ops().remove_network(&net.id))
            .await
        {
            Ok(()) => {
                tracing::warn!(network = name, id = %net.id, "removed a duplicate of the sandbox network");
                left -= 1;
            }
            // Another run healed it first.
            Err(e) if e.is_not_found() => left -= 1,
            Err(e) => {
                tracing::warn!(network = name, id = %net.id, error = %e, "duplicate sandbox network not removed (in use?)");
            }
        }
    }
    named(driver, name).await
}

/// A lock shared by every process of this user on this host (and every task in this one), held
/// while a run looks for and creates the network `name`: `flock` on a file in a directory only
/// this user can write (`/run/openshell` for root, `$XDG_RUNTIME_DIR/openshell` otherwise,
/// both checked to be ours and closed to others), so no other user, sandbox or process
/// without our rights can hold it (an abstract socket could be bound by anyone first, and
/// every run then waited its whole timeout). The kernel releases it when the process ends,
/// even by SIGKILL. Without such a directory there is no lock; healing still converges.
#[derive(Debug)]
struct HostLock {
    /// The locked file and its path, while the lock is held. Dropping unlinks the path, then
    /// closes the file (releasing the lock), so lock files do not pile up; a waiter that
    /// locked the unlinked file sees that its path now names another file, or none, and
    /// opens it again.
    _held: Option<(std::fs::File, std::path::PathBuf)>,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        if let Some((_, path)) = &self._held {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `file` is still the file at `path` (not unlinked by a holder that let go).
fn still_at(file: &std::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Where the lock files live, for a process of user `uid`: root's in `/run/openshell`, anyone
/// else's in their runtime directory.
fn lock_dir(uid: u32) -> Option<std::path::PathBuf> {
    if uid == 0 {
        return Some(std::path::PathBuf::from("/run/openshell"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(&d).join("openshell"))
}

/// This process's effective user, as `/proc/self` is owned by it.
fn effective_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Opens (creating) the lock file for `name` in `dir`, after making sure `dir` is a real
/// directory owned by `uid` that no one else may write.
fn open_lock(dir: &std::path::Path, uid: u32, name: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    let refused = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{}: {why}", dir.display()),
        )
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(refused("not a directory"));
    }
    if meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(refused("not ours alone (owner or permissions)"));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(dir.join(lock_file(name)))
}

/// The lock file of network `name` (hashed: a name may hold any character).
fn lock_file(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("network-{hex}.lock")
}

impl HostLock {
    /// Takes the lock, waiting at most `wait`; after that, goes on without it (a stuck holder
    /// must not stop us; healing covers the race).
    async fn acquire(name: &str, wait: Duration) -> HostLock {
        let Some((uid, dir)) = effective_uid().and_then(|uid| Some((uid, lock_dir(uid)?))) else {
            tracing::warn!(network = name, "no private directory for the host-wide lock; creating the sandbox network without it");
            return HostLock { _held: None };
        };
        HostLock::acquire_in(&dir, uid, name, wait).await
    }

    async fn acquire_in(dir: &std::path::Path, uid: u32, name: &str, wait: Duration) -> HostLock {
        use rustix::fs::{flock, FlockOperation};
        let path = dir.join(lock_file(name));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let file = match open_lock(dir, uid, name) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(network = name, error = %e, "creating the sandbox network without the host-wide lock");
                    return HostLock { _held: None };
                }
            };
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) if still_at(&file, &path) => {
                    return HostLock {
                        _held: Some((file, path)),
                    }
                }
                // The holder let go and unlinked it: lock the file now at the path.
                Ok(()) => continue,
                Err(e)
                    if e == rustix::io::Errno::WOULDBLOCK
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(LOCK_PAUSE).await;
                }
                Err(e) => {
                    tracing::warn!(network = name, error = %e, "creating the sandbox network without the host-wide lock");
                    return HostLock { _held: None };
                }
            }
        }
    }

    #[cfg(test)]
    fn is_held(&self) -> bool {
        self._held.is_some()
    }
}

#[cfg(test)]
mod subnet_tests {
    use super::subnet_of;

    #[test]
    fn the_first_ipv4_subnet_of_either_engine_is_read() {
        let docker = serde_json::json!({"IPAM": {"Config": [
            {"Subnet": "fd00::/64"}, {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}});
        let docker = subnet_of(&docker).unwrap_or_else(|| panic!("none"));
        assert_eq!(docker.subnet, "172.18.0.0/16");
        assert_eq!(docker.gateway.as_deref(), Some("172.18.0.1"));
        let libpod =
            serde_json::json!({"subnets": [{"subnet": "10.89.3.0/24", "gateway": "10.89.3.1"}]});
        let libpod = subnet_of(&libpod).unwrap_or_else(|| panic!("none"));
        assert_eq!(libpod.subnet, "10.89.3.0/24");
        assert_eq!(libpod.gateway.as_deref(), Some("10.89.3.1"));
        assert_eq!(
            subnet_of(&serde_json::json!({"IPAM": {"Config": null}})),
            None
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anyone could hold the old lock (an abstract socket any process or host-network sandbox
    /// can bind first), and every run then waited its whole timeout without it. Such a squatter
    /// no longer matters, and the lock still makes runs take turns.
    #[tokio::test]
    async fn only_we_can_hold_the_network_lock() {
        let name = format!("openshell-lock-test-{}", std::process::id());
        let squatter = {
            use std::os::linux::net::SocketAddrExt;
            let key = format!("openshell/network/{name}");
            std::os::unix::net::SocketAddr::from_abstract_name(key.as_bytes())
                .and_then(|a| std::os::unix::net::UnixListener::bind_addr(&a))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let began = tokio::time::Instant::now();
        let first = HostLock::acquire(&name, Duration::from_secs(2)).await;
        assert!(first.is_held(), "the lock was not taken");
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "waited for the squatter"
        );
        // A second holder waits its turn, and gets none while the first holds it.
        let second = HostLock::acquire(&name, Duration::from_millis(200)).await;
        assert!(!second.is_held(), "two runs held the lock at once");
        drop(first);
        let third = HostLock::acquire(&name, Duration::from_secs(2)).await;
        assert!(third.is_held());
        drop((second, third, squatter));
        // The last holder leaves no lock file behind.
        if let Some(dir) = effective_uid().and_then(lock_dir) {
            let path = dir.join(lock_file(&name));
            let left = path.exists();
            let _ = std::fs::remove_file(path);
            assert!(!left, "the lock file was left");
        }
    }

    /// A lock directory someone else could write is refused rather than trusted.
    #[tokio::test]
    async fn a_lock_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = base.path().join("openshell");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        let uid = effective_uid().unwrap_or_else(|| panic!("no uid"));
        let lock = HostLock::acquire_in(&dir, uid, "n", Duration::from_millis(10)).await;
        assert!(!lock.is_held());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("{e}"));
        let lock = HostLock::acquire_in(&dir, uid, "n", Duration::from_millis(10)).await;
        assert!(lock.is_held());
    }
}
