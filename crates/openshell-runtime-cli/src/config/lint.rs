//! Mistakes in `gateway.toml` that would otherwise be ignored silently: a section of the wrong
//! type, one of our keys misspelled or in the wrong section.
//!
//! The file is OpenShell's, and holds settings we do not read, so a key we do not know is not
//! a mistake by itself. Only what is close to ours is warned about: a name that differs from
//! one of ours by case, `-` for `_`, at most two edits, or truncation (`bind` for
//! `bind_address`), and our own keys where we never look for them.

use serde::Serialize;

/// Something in the file that is probably a mistake. The run goes on without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ConfigWarning {
    /// The file and where in it, e.g. `gateway.toml: [openshell.gateway] bind_adress`.
    pub(crate) origin: String,
    /// What is wrong and the fix.
    pub(crate) problem: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.problem)
    }
}

/// What we read, as (section, its children we read, whether each is a table).
const SCHEMA: &[(&str, &[(&str, bool)])] = &[
    ("", &[("openshell", true)]),
    (
        "openshell",
        &[("version", false), ("gateway", true), ("drivers", true)],
    ),
    (
        "openshell.gateway",
        &[
            ("bind_address", false),
            ("compute_drivers", false),
            ("compute_driver", false),
            ("host_gateway_ip", false),
            ("sandbox_route_kind", false),
            ("sandbox_allow_lan", false),
        ],
    ),
    ("openshell.drivers", &[("docker", true), ("podman", true)]),
    ("openshell.drivers.docker", DRIVER_KEYS),
    ("openshell.drivers.podman", DRIVER_KEYS),
];

/// The keys we read in a driver's table.
const DRIVER_KEYS: &[(&str, bool)] = &[
    ("host_gateway_ip", false),
    ("grpc_endpoint", false),
    ("sandbox_network_mode", false),
];

/// Where each of our keys belongs, for one found elsewhere.
const HOMES: &[(&str, &str)] = &[
    ("bind_address", "[openshell.gateway]"),
    ("version", "[openshell]"),
    ("compute_drivers", "[openshell.gateway]"),
    ("compute_driver", "[openshell.gateway]"),
    (
        "host_gateway_ip",
        "[openshell.gateway], [openshell.drivers.docker] or [openshell.drivers.podman]",
    ),
    (
        "grpc_endpoint",
        "[openshell.drivers.docker] or [openshell.drivers.podman]",
    ),
    (
        "sandbox_network_mode",
        "[openshell.drivers.docker] or [openshell.drivers.podman]",
    ),
    (
        "rootless_host_loopback",
        "no section: gateway.toml has no such setting; use --rootless-host-loopback or OPENSHELL_ROOTLESS_HOST_LOOPBACK",
    ),
];

/// The warnings for a parsed file shown as `shown`.
pub(crate) fn lint(doc: &toml::Table, shown: &str) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    for (section, known) in SCHEMA {
        let Some(table) = lookup(doc, section) else {
            continue;
        };
        let here = |key: &str| {
            if section.is_empty() {
                format!("{shown}: {key}")
            } else {
                format!("{shown}: [{section}] {key}")
            }
        };
        for (key, value) in table {
            let warn = |problem: String| ConfigWarning {
                origin: here(key),
                problem,
            };
            match known.iter().find(|(k, _)| k == key) {
                Some((_, true)) if !value.is_table() => out.push(warn(format!(
                    "expected a section (table), found {}; its settings are ignored",
                    value.type_str()
                ))),
                Some(_) => {}
                None => {
                    if let Some((_, home)) = HOMES.iter().find(|(k, _)| k == key) {
                        out.push(warn(format!("ignored here: it belongs in {home}")));
                    } else if let Some((near, _)) = known.iter().find(|(k, _)| close(key, k)) {
                        let kind = if value.is_table() { "section" } else { "key" };
                        out.push(warn(format!(
                            "unknown {kind}, ignored; did you mean {near}?"
                        )));
                    }
                }
            }
        }
    }
    out
}

/// The table at a dotted path, when every step is a table.
fn lookup<'a>(doc: &'a toml::Table, section: &str) -> Option<&'a toml::Table> {
    let mut t = doc;
    for k in section.split('.').filter(|k| !k.is_empty()) {
        t = t.get(k)?.as_table()?;
    }
    Some(t)
}

/// Whether `key` looks like a mistyped `ours`.
fn close(key: &str, ours: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    key == ours
        || (key.len() >= 4 && (ours.starts_with(&key) || ours.ends_with(&key)))
        || edits(&key, ours) <= 2
}

/// Levenshtein distance, for short names.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, want: &[&str]) {
        let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = lint(&doc, "g.toml")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.contains(w), "{g:?} lacks {w:?}");
        }
    }

    #[test]
    fn near_misses_misplaced_keys_and_wrong_sections_are_warned_about() {
        check(
            "[openshell.gateway]\nBind-Address = \"1.2.3.4\"\n",
            &["[openshell.gateway] Bind-Address: unknown key, ignored; did you mean bind_address?"],
        );
        check(
            "[openshell.drivers.docker]\ngateway_ip = \"1.2.3.4\"\n[openshell.drivers.podmn]\n",
            &[
                "[openshell.drivers] podmn: unknown section, ignored; did you mean podman?",
                "[openshell.drivers.docker] gateway_ip: unknown key, ignored; did you mean host_gateway_ip?",
            ],
        );
        check(
            "bind_address = \"1.2.3.4\"\n[openshell]\ngateway = \"x\"\n",
            &[
                "g.toml: bind_address: ignored here: it belongs in [openshell.gateway]",
                "[openshell] gateway: expected a section (table), found string",
            ],
        );
        check(
            "[openshell.gateway]\nrootless_host_loopback = true\n",
            &["gateway.toml has no such setting"],
        );
    }

    #[test]
    fn both_layouts_and_endpoint_keys_are_known() {
        check(
            "[openshell]\nversion = 1\n[openshell.gateway]\ncompute_drivers = [\"podman\"]\nhost_gateway_ip = \"10.0.0.1\"\n[openshell.drivers.podman]\ngrpc_endpoint = \"http://127.0.0.1:17670\"\n",
            &[],
        );
        check(
            "[openshell]\nversion = 2\n[openshell.gateway]\ncompute_driver = \"docker\"\n[openshell.drivers.docker]\ngrpc_endpoint = \"https://host.openshell.internal:8443\"\n",
            &[],
        );
        check(
            "version = 1\n[openshell.gateway]\ncompute_drivr = \"docker\"\ngrpc_endpoint = \"http://127.0.0.1:1\"\n",
            &[
                "g.toml: version: ignored here: it belongs in [openshell]",
                "compute_drivr: unknown key, ignored; did you mean compute_driver",
                "grpc_endpoint: ignored here: it belongs in [openshell.drivers.docker] or [openshell.drivers.podman]",
            ],
        );
    }

    #[test]
    fn openshell_settings_we_do_not_read_pass_quietly() {
        check(
            "[openshell.gateway]\nbind_address = \"127.0.0.1\"\nlog_level = \"debug\"\ntls_cert = \"/x\"\n[openshell.sandbox]\nimage = \"x\"\n[openshell.drivers.docker]\nhost_gateway_ip = \"10.0.0.1\"\nnetwork = \"openshell\"\n[telemetry]\nenabled = false\n",
            &[],
        );
    }
}
