//! What a sandbox is made of before it touches an engine: the validated [`SandboxSpec`], the
//! environment it is handed, and the command that calls back.

use std::collections::BTreeMap;

use openshell_runtime::consts::{LABEL_MANAGED, LABEL_PREFIX, LABEL_SANDBOX};
use openshell_runtime::Route;

/// Environment variable carrying the gateway URL into a sandbox.
pub const ENV_ENDPOINT: &str = "OPENSHELL_ENDPOINT";
/// Environment variable carrying the sandbox's id.
pub const ENV_SANDBOX_ID: &str = "OPENSHELL_SANDBOX_ID";
/// Environment variable carrying the sandbox's one-time callback token.
pub const ENV_TOKEN: &str = "OPENSHELL_TOKEN";

/// What to run.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Sandbox id: `[a-z0-9-]`, at most 40 characters; it names the container.
    pub id: String,
    /// Image reference.
    pub image: String,
    /// Command.
    pub command: Vec<String>,
    /// The one-time token the sandbox presents when it calls back.
    pub token: String,
    /// Extra labels (keys must not start with `io.openshell.`).
    pub labels: BTreeMap<String, String>,
}

/// Why a sandbox spec was refused (before anything was created).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sandbox {field}: {problem}")]
pub struct SpecError {
    /// Which field.
    pub field: &'static str,
    /// What is wrong, naming the value.
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> SpecError {
    SpecError {
        field,
        problem: problem.into(),
    }
}

impl SandboxSpec {
    /// Checks the spec, so that a bad one changes nothing on the engine.
    pub fn validate(&self) -> Result<(), SpecError> {
        let shown = openshell_runtime::display_value;
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 40
            && !self.id.starts_with('-')
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(invalid(
                "id",
                format!(
                    "{:?} must be 1-40 of [a-z0-9-], not starting with '-'",
                    shown(&self.id)
                ),
            ));
        }
        let token_ok = (16..=128).contains(&self.token.len())
            && self
                .token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token_ok {
            return Err(invalid("token", "must be 16-128 of [A-Za-z0-9_-]"));
        }
        if self.image.is_empty()
            || self
                .image
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "image",
                format!("{:?} is not an image reference", shown(&self.image)),
            ));
        }
        for (k, v) in &self.labels {
            if k.starts_with(LABEL_PREFIX) {
                return Err(invalid(
                    "labels",
                    format!("{k:?} uses the reserved prefix {LABEL_PREFIX}"),
                ));
            }
            if k.is_empty() || k.chars().chain(v.chars()).any(char::is_control) {
                return Err(invalid(
                    "labels",
                    format!("{:?} has an empty key or control characters", shown(k)),
                ));
            }
        }
        Ok(())
    }

    /// The container's name.
    pub fn container_name(&self) -> String {
        format!("openshell-{}", self.id)
    }

    /// The labels the container carries: the caller's plus ours.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_SANDBOX.into(), self.id.clone());
        labels
    }

    /// The environment handed to the sandbox: where to call, who it is, its token.
    pub fn env(&self, route: &Route) -> Vec<(String, String)> {
        vec![
            (ENV_ENDPOINT.into(), route.sandbox_endpoint()),
            (ENV_SANDBOX_ID.into(), self.id.clone()),
            (ENV_TOKEN.into(), self.token.clone()),
        ]
    }
}

/// The route's extra-hosts entries as `name:value` strings, each validated again.
pub(crate) fn extra_host_entries(
    route: &Route,
) -> Result<Vec<String>, openshell_runtime::ExtraHostError> {
    route
        .extra_hosts()
        .iter()
        .map(|h| openshell_runtime::ExtraHost::parse(&h.to_string()).map(|h| h.to_string()))
        .collect()
}

/// The shell command a sandbox runs to call back: bounded retries, then exit 1. Each attempt
/// is bounded by `timeout` rather than wget's `-T`, which crashes Debian's static busybox 1.35.
pub fn sandbox_command(attempts: u32) -> Vec<String> {
    let script = format!(
        "i=0; while [ $i -lt {attempts} ]; do \
         timeout 3 wget -q -O /dev/null \"${ENV_ENDPOINT}/callback/${ENV_SANDBOX_ID}/${ENV_TOKEN}\" && exit 0; \
         i=$((i+1)); sleep 0.5; done; echo 'callback failed' >&2; exit 1"
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            id: "sb-1".into(),
            image: "busybox:local".into(),
            command: vec![],
            token: "0123456789abcdef".into(),
            labels: Default::default(),
        }
    }

    #[test]
    fn hostile_specs_are_refused_before_anything_is_created() {
        assert!(spec().validate().is_ok());
        type Mutation = Box<dyn Fn(&mut SandboxSpec)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|s| s.id = "Upper".into()),
            Box::new(|s| s.id = "a/b".into()),
            Box::new(|s| s.id = "-x".into()),
            Box::new(|s| s.id = "x".repeat(41)),
            Box::new(|s| s.token = "short".into()),
            Box::new(|s| s.token = "0123456789abcdef\n".into()),
            Box::new(|s| s.image = "a b".into()),
            Box::new(|s| {
                s.labels
                    .insert("io.openshell.managed".into(), "false".into());
            }),
            Box::new(|s| {
                s.labels.insert("k".into(), "v\nx".into());
            }),
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut s = spec();
            mutate(&mut s);
            assert!(s.validate().is_err(), "case {i} accepted");
        }
    }
}
