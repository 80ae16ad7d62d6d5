//! Nothing of ours outlives the run that made it. A probe container carries its owner process
//! and the time it expires; the engine removes it itself once it exits; the run removes it on
//! every exit path it controls (including SIGINT, through [`Sweep::Mine`]); and what is left by
//! the paths it does not control (SIGKILL, a crash, a lost engine) is swept by the next run
//! ([`Sweep::Stale`]).
//!
//! The owner is `<boot id>/<pid namespace>/<pid>`. A pid means something only on the same boot
//! of the same host and in the same pid namespace, so only there is "the owner is gone"
//! evidence; anywhere else (another host sharing the engine, a run inside a container) the
//! expiry decides.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openshell_runtime::consts::{LABEL_EXPIRES, LABEL_OWNER, LABEL_PROBE};
use serde::Serialize;

/// Which probe containers a sweep removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Those whose owner process is gone from this host, or that expired: what interrupted or
    /// crashed runs left. A probe of a live run is never touched before it expires.
    Stale,
    /// This process's own, for a run that was interrupted while probing.
    Mine,
}

/// A probe container a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptProbe {
    /// The engine's container id.
    pub container_id: String,
    /// The probe's sandbox id.
    pub sandbox_id: String,
    /// Why it was removed.
    pub reason: String,
}

/// Who made a container: one process on one boot of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    boot: String,
    pid_ns: String,
    pid: u32,
}

const UNKNOWN: &str = "unknown";

impl Owner {
    /// This process. The boot id and pid namespace come from `/proc`; without it (not Linux)
    /// they are unknown, and a pid is never taken as evidence.
    pub(crate) fn here() -> Owner {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|b| b.trim().to_string())
            .ok()
            .filter(|b| !b.is_empty() && !b.contains('/'));
        // `pid:[4026531836]`
        let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok().and_then(|l| {
            let digits: String = l
                .to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            (!digits.is_empty()).then_some(digits)
        });
        Owner {
            boot: boot.unwrap_or_else(|| UNKNOWN.into()),
            pid_ns: pid_ns.unwrap_or_else(|| UNKNOWN.into()),
            pid: std::process::id(),
        }
    }

    fn parse(s: &str) -> Option<Owner> {
        let mut parts = s.split('/');
        let (boot, pid_ns, pid) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Owner {
            boot: boot.to_string(),
            pid_ns: pid_ns.to_string(),
            pid: pid.parse().ok()?,
        })
    }

    /// Whether `other`'s pid names a process we can see.
    fn shares_pids_with(&self, other: &Owner) -> bool {
        self.boot != UNKNOWN
            && self.pid_ns != UNKNOWN
            && self.boot == other.boot
            && self.pid_ns == other.pid_ns
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.boot, self.pid_ns, self.pid)
    }
}

/// Whether the owner labelled `label` is known to be gone: its pid names no process where a pid
/// is evidence (same boot, same pid namespace). An unreadable label proves nothing.
pub(crate) fn owner_gone(label: Option<&str>, here: &Owner, alive: &dyn Fn(u32) -> bool) -> bool {
    label
        .and_then(Owner::parse)
        .is_some_and(|o| here.shares_pids_with(&o) && !alive(o.pid))
}

/// Whether the owner labelled `label` runs where its pid is no evidence (another host, boot or
/// pid namespace), or cannot be read.
pub(crate) fn owner_elsewhere(label: Option<&str>, here: &Owner) -> bool {
    label
        .and_then(Owner::parse)
        .is_none_or(|o| !here.shares_pids_with(&o))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether process `pid` exists (in our pid namespace, where [`Owner::shares_pids_with`] holds).
pub(crate) fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The labels that mark a probe of `owner`, stale `lifetime` from now at the latest.
pub(crate) fn probe_labels(owner: &Owner, lifetime: Duration) -> BTreeMap<String, String> {
    let mut labels = owner_labels(owner, lifetime);
    labels.insert(LABEL_PROBE.to_string(), "true".to_string());
    labels
}

/// The labels that name `owner` and make what carries them stale `lifetime` from now at the
/// latest, for [`sweep_reason`].
pub(crate) fn owner_labels(owner: &Owner, lifetime: Duration) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_OWNER.to_string(), owner.to_string()),
        (
            LABEL_EXPIRES.to_string(),
            (now_secs().saturating_add(lifetime.as_secs())).to_string(),
        ),
    ])
}

/// Why the probe container (or scratch network) labelled `labels` goes in a sweep of `which`
/// run by `here` at `now`, or `None` when it stays. `alive` says whether a pid of ours exists.
pub(crate) fn sweep_reason(
    which: Sweep,
    labels: &BTreeMap<String, String>,
    here: &Owner,
    now: u64,
    alive: &dyn Fn(u32) -> bool,
) -> Option<String> {
    let owner = labels.get(LABEL_OWNER).and_then(|o| Owner::parse(o));
    match which {
        Sweep::Mine => (owner.as_ref() == Some(here)).then(|| "this run was interrupted".into()),
        Sweep::Stale => {
            if let Some(o) = owner.filter(|o| here.shares_pids_with(o)) {
                if !alive(o.pid) {
                    return Some(format!("its run (pid {}) is gone", o.pid));
                }
            }
            let expires = labels.get(LABEL_EXPIRES)?.parse::<u64>().ok()?;
            (now >= expires).then(|| format!("expired {} s ago", now - expires))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(boot: &str, ns: &str, pid: u32) -> Owner {
        Owner {
            boot: boot.into(),
            pid_ns: ns.into(),
            pid,
        }
    }

    fn labels(owner: &str, expires: Option<u64>) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (LABEL_PROBE.to_string(), "true".to_string()),
            (LABEL_OWNER.to_string(), owner.to_string()),
        ]);
        if let Some(e) = expires {
            l.insert(LABEL_EXPIRES.into(), e.to_string());
        }
        l
    }

    #[test]
    fn owners_round_trip_and_reject_garbage() {
        let o = owner("b00t", "4026531836", 42);
        assert_eq!(Owner::parse(&o.to_string()), Some(o));
        for bad in ["", "a/b", "a/b/c", "a/b/1/2", "a/b/-1"] {
            assert_eq!(Owner::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stale_probes_are_those_whose_run_is_gone_or_that_expired() {
        let here = owner("boot", "ns", 100);
        let alive = |pid: u32| pid == 100 || pid == 7;
        let stale =
            |l: &BTreeMap<String, String>| sweep_reason(Sweep::Stale, l, &here, 1000, &alive);
        // A live run's probe stays until it expires, even when it is not ours.
        assert_eq!(stale(&labels("boot/ns/7", Some(2000))), None);
        assert_eq!(stale(&labels("boot/ns/100", Some(2000))), None);
        // A gone run's probe goes at once.
        assert!(stale(&labels("boot/ns/8", Some(2000))).is_some_and(|r| r.contains("pid 8")));
        // Another boot, host or pid namespace: the pid says nothing; the expiry decides.
        assert_eq!(stale(&labels("other/ns/8", Some(2000))), None);
        assert_eq!(stale(&labels("boot/other/8", Some(2000))), None);
        assert!(stale(&labels("other/ns/8", Some(1000))).is_some_and(|r| r.contains("expired")));
        // Without /proc nothing is evidence.
        let blind = owner(UNKNOWN, UNKNOWN, 100);
        let l = labels("unknown/unknown/8", Some(2000));
        assert_eq!(
            sweep_reason(Sweep::Stale, &l, &blind, 1000, &|_| false),
            None
        );
        // Unreadable marks are never a reason to remove.
        assert_eq!(stale(&labels("garbage", None)), None);
        assert_eq!(stale(&labels("other/ns/8", None)), None);
    }

    #[test]
    fn an_interrupted_run_removes_only_its_own() {
        let here = owner("boot", "ns", 100);
        let mine = |o: &str| sweep_reason(Sweep::Mine, &labels(o, Some(0)), &here, 1000, &|_| true);
        assert!(mine("boot/ns/100").is_some());
        assert_eq!(mine("boot/ns/101"), None);
        assert_eq!(mine("other/ns/100"), None);
    }

    #[test]
    fn probe_labels_name_this_process_and_expire_later() {
        let here = Owner::here();
        let l = probe_labels(&here, Duration::from_secs(60));
        assert_eq!(l.get(LABEL_OWNER), Some(&here.to_string()));
        let expires: u64 = l[LABEL_EXPIRES].parse().unwrap_or_default();
        assert!(expires >= now_secs() + 59);
        assert_eq!(
            sweep_reason(Sweep::Stale, &l, &here, now_secs(), &pid_alive),
            None
        );
        assert!(sweep_reason(Sweep::Mine, &l, &here, now_secs(), &pid_alive).is_some());
    }
}
