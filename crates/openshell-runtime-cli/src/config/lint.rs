//! Mistakes in `gateway.toml` that would otherwise be ignored silently: a section of the wrong
//! type, one of our keys misspelled or in the wrong section.
//!
//! The file is OpenShell's, and holds settings we do not read, so a key we do not know is not
//! a mistake by itself. Only what is close to ours is warned about: a name that differs from
//! one of ours by case, `-` for `_`, at most two edits, or truncation (`bind` for
//! `bind_address`), and our own keys where we never look for them.

use serde::Serialize;

use super::keys::{table, Section, DRIVERS, KEYS};

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

/// What we read, from [`KEYS`], as (section, its children we read, whether each is a table):
/// the sections down to each driver's table, and each section's keys.
fn schema() -> Vec<(String, Vec<(&'static str, bool)>)> {
    let keys = |section: Section| -> Vec<(&'static str, bool)> {
        KEYS.iter()
            .flat_map(|k| k.file)
            .filter(|f| f.section == section)
            .map(|f| (f.key, false))
            .collect()
    };
    let mut openshell = keys(Section::OpenShell);
    openshell.extend([("gateway", true), ("drivers", true)]);
    let mut out = vec![
        (String::new(), vec![("openshell", true)]),
        (Section::OpenShell.path(""), openshell),
        (Section::Gateway.path(""), keys(Section::Gateway)),
        (
            "openshell.drivers".to_string(),
            DRIVERS.iter().map(|d| (*d, true)).collect(),
        ),
    ];
    for d in DRIVERS {
        out.push((Section::Driver.path(d), keys(Section::Driver)));
    }
    out
}

/// Where one of our keys belongs (for one found elsewhere), from [`KEYS`]: its sections, or,
/// for a setting gateway.toml has no key for, its flag and variable.
fn home(key: &str) -> Option<String> {
    let mut sections: Vec<String> = Vec::new();
    for f in KEYS.iter().flat_map(|k| k.file).filter(|f| f.key == key) {
        let shown: Vec<String> = match f.section {
            Section::Driver => DRIVERS
                .iter()
                .map(|d| format!("[{}]", Section::Driver.path(d)))
                .collect(),
            other => vec![format!("[{}]", other.path(""))],
        };
        for s in shown {
            if !sections.contains(&s) {
                sections.push(s);
            }
        }
    }
    if let Some((last, rest)) = sections.split_last() {
        return Some(if rest.is_empty() {
            last.clone()
        } else {
            format!("{} or {last}", rest.join(", "))
        });
    }
    let setting = KEYS.iter().find(|k| k.name == key && k.file.is_empty())?;
    let mut ways: Vec<String> = setting.flag.iter().map(|f| format!("--{f}")).collect();
    ways.extend(setting.env.iter().map(|e| e.name.to_string()));
    Some(format!(
        "no section: gateway.toml has no such setting; use {}",
        ways.join(" or ")
    ))
}

/// The warnings for a parsed file shown as `shown`.
pub(crate) fn lint(doc: &toml::Table, shown: &str) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    for (section, known) in schema() {
        let Some(table) = table(doc, &section) else {
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
                    if let Some(home) = home(key) {
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
